"""The real image: built with podman on a local Debian base, run on loopback, smoke-tested.

The fixture installs podman, buildah, runc and mmdebstrap with apt-get when they are
missing (setting the machine up); `mlcd image build` itself only names them.
"""

import json
import re

import pandas as pd
import pytest

from mlcd.container.image import build
from mlcd.container.podman import podman
from mlcd.container.smoke import running, smoke_test

from ..system import install_podman

pytestmark = [pytest.mark.image, pytest.mark.needs_podman]


@pytest.fixture(scope="module")
def built(reproduced_repo):
    install_podman()
    tag = "localhost/mlcd-model:pytest"
    image = build(reproduced_repo.path, tag, local_base=True, base=None, runtime=None)
    yield image
    podman("rmi", "--force", tag, check=False)


def test_image_is_small_labelled_non_root_with_healthcheck(built, reproduced_repo):
    manifest = json.loads((reproduced_repo.path / "models" / "bundle" / "manifest.json").read_text())
    head = reproduced_repo.run("git", "rev-parse", "HEAD").stdout.strip()
    assert built.labels["io.mlcd.model-hash"] == manifest["model_hash"]
    assert built.labels["org.opencontainers.image.revision"] == head
    assert built.user == "10001:10001"
    assert built.healthcheck and "/health" in " ".join(built.healthcheck["Test"])
    assert built.size_bytes <= 300 * 10**6, f"image is {built.size_bytes / 1e6:.0f} MB"


def test_runtime_holds_no_training_stack(built):
    # websockets neither: uvicorn would hand it upgrades for an API with no WebSocket route (issue 28).
    modules = ("sklearn", "pandas", "scipy", "dvc", "skl2onnx", "pip", "websockets", "wsproto")
    code = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
    done = podman("run", "--rm", "--entrypoint", "python3", built.name, "-c", code)
    assert done.stdout.strip() == "[]"


def test_container_answers_the_test_set_like_in_process_onnx(built, reproduced_repo):
    bundle = reproduced_repo.path / "models" / "bundle"
    test = pd.read_parquet(reproduced_repo.path / "data" / "processed" / "test.parquet")
    records = test.drop(columns="diagnosis").to_dict(orient="records")
    with running(built.name, "mlcd-pytest-smoke") as container:
        assert smoke_test(container, bundle, records) == len(records)
        assert smoke_test(container, bundle) == 5  # the bundle's stored examples
        assert container.ready_seconds < 10
        health = podman("healthcheck", "run", container.name, check=False)
        assert health.returncode == 0, health.stderr
    assert container.name not in podman("ps", "--all", "--format", "{{.Names}}").stdout


def test_dockerfile_default_base_is_a_public_slim_python():
    from ..helpers import PROJECT_ROOT

    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=docker\.io/library/python:3\.11-slim-bookworm$", text, re.M)
    assert "ca-certificates.crt" not in text.replace("#", "")


def test_build_without_a_reachable_registry_names_local_base(built, reproduced_repo):
    done = reproduced_repo.mlcd(
        "image", "build", "--tag", "localhost/mlcd-model:unreachable",
        "--base-image", "127.0.0.1:1/library/python:3.11-slim-bookworm",
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "mlcd image build --local-base" in done.stderr and "Traceback" not in done.stderr
