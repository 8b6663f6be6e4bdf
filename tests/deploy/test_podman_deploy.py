"""The podman backend for real: two containers behind Debian's nginx, switched under load
(the images: conftest.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from mlcd.container.podman import podman
from mlcd.deploy.podman_backend import PodmanBackend

from ..helpers import free_port_run
from .conftest import ENVIRONMENT, Load

pytestmark = [pytest.mark.image, pytest.mark.needs_podman]


def test_deploy_switch_under_load_broken_release_and_rollback(releases, reproduced_repo, tmp_path):
    v1, v2, v3 = releases["v1"], releases["v2"], releases["v3"]
    port = free_port_run()
    options = ["--environment", ENVIRONMENT, "--port", str(port), "--state-dir", str(tmp_path / "state")]
    record = json.loads((v1.bundle / "examples.json").read_text())["records"][0]
    backend = PodmanBackend(ENVIRONMENT, tmp_path / "state", port)
    public = f"http://127.0.0.1:{port}"
    try:
        done = reproduced_repo.mlcd("deploy", v1.image, "--bundle", str(v1.bundle), *options)
        assert "blue is live" in done.stderr
        # "live" is true when said: the very next request through the proxy is answered by the new colour
        assert httpx.get(f"{public}/health").headers["x-mlcd-colour"] == "blue"
        assert httpx.post(f"{public}/predict", json=record).json()["model"]["hash"] == v1.model_hash

        with Load(public, record) as load:
            done = reproduced_repo.mlcd("deploy", v2.image, "--bundle", str(v2.bundle), *options)
        assert "green is live" in done.stderr and "previous blue kept for rollback" in done.stderr
        assert httpx.get(f"{public}/health").headers["x-mlcd-colour"] == "green"
        print(
            f"\nswitch v1 -> v2: {len(load.answered) + len(load.failed)} requests, {len(load.failed)} failed"
        )
        assert load.failed == []
        assert load.answered[0] == v1.model_hash and load.answered[-1] == v2.model_hash
        assert len(load.answered) > 50

        with Load(public, record) as load:
            failed = reproduced_repo.mlcd(
                "deploy", v3.image, "--bundle", str(v3.bundle), "--timeout", "20", *options, check=False
            )
        assert failed.returncode == 2, failed.stderr
        assert "traffic not switched; green (localhost/mlcd-deploy:v2) keeps serving" in failed.stderr
        assert "is not running" in failed.stderr and "sha256" in failed.stderr  # the server's own refusal
        assert load.failed == [] and set(load.answered) == {v2.model_hash}
        state = json.loads((tmp_path / "state" / "state.json").read_text())
        assert state["live"]["image"] == v2.image and state["previous"]["image"] == v1.image

        with Load(public, record) as load:  # without --port: the environment's state remembers it
            done = reproduced_repo.mlcd("rollback", *[o for o in options if o not in ("--port", str(port))])
        assert "rolled back to blue with localhost/mlcd-deploy:v1" in done.stderr
        assert load.failed == [] and load.answered[-1] == v1.model_hash
        response = httpx.post(f"{public}/predict", json=record)
        assert response.headers["x-mlcd-colour"] == "blue"
        assert response.json()["model"]["hash"] == v1.model_hash

        done = reproduced_repo.mlcd("undeploy", *options)
        assert "both colours removed, nginx stopped" in done.stderr
        assert not (tmp_path / "state" / "state.json").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{public}/predict", json=record)
    finally:
        backend.teardown()
    assert not [n for n in podman("ps", "-a", "--format", "{{.Names}}").stdout.split() if ENVIRONMENT in n]


def test_wrong_bundle_fails_the_smoke_test_and_nothing_switches(releases, reproduced_repo, tmp_path):
    v1, v2 = releases["v1"], releases["v2"]
    port = free_port_run()
    options = ["--environment", ENVIRONMENT, "--port", str(port), "--state-dir", str(tmp_path / "state")]
    try:
        failed = reproduced_repo.mlcd("deploy", v1.image, "--bundle", str(v2.bundle), *options, check=False)
        assert failed.returncode == 2
        assert "traffic not switched; nothing was serving" in failed.stderr
        assert f"serves model {v1.model_hash[:12]}, but the bundle is {v2.model_hash[:12]}" in failed.stderr
        assert not (tmp_path / "state" / "state.json").exists()
        missing = reproduced_repo.mlcd("deploy", "localhost/mlcd-deploy:no-such-tag", *options, check=False)
        assert missing.returncode == 2
        assert "deploy of localhost/mlcd-deploy:no-such-tag failed, traffic not switched" in missing.stderr
    finally:
        PodmanBackend(ENVIRONMENT, tmp_path / "state", port).teardown()
