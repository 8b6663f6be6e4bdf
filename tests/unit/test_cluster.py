"""cluster.engine against real Dask clusters on 127.0.0.1: a worker killed mid-search, a worker running
other package versions, a scheduler without workers. Each is a ClusterError naming what to fix, and
the stage's committed outputs stay as they were."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mlcd.cluster import SCHEDULER_ENV, engine, loopback_cluster
from mlcd.config import ProjectPaths, load_params
from mlcd.errors import ClusterError
from mlcd.modeling.train import run_train

from ..helpers import a_worker_killed_when_busy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dask")]


@pytest.fixture
def cluster() -> Iterator[object]:
    with loopback_cluster(2) as started:
        yield started


def _without_workers(cluster) -> None:
    cluster.scale(0)
    deadline = time.monotonic() + 30
    while cluster.scheduler_info["workers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cluster.scheduler_info["workers"]


def _outputs(paths: ProjectPaths) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (paths.model, paths.train_metrics, paths.search_metrics)}


def test_a_worker_killed_mid_search_is_a_clear_error_or_the_same_result(
    cluster, built_project, tmp_path, monkeypatch
):

    shutil.copytree(built_project, tmp_path / "project")
    paths = ProjectPaths(tmp_path / "project")
    params = load_params(paths.params)
    space = {"logistic_regression": {"C": [0.001, 0.01, 0.1, 1.0]}}
    search = params.train.search.model_copy(update={"kind": "grid", "cv_folds": 5, "space": space})
    train = params.train.model_copy(update={"cv_folds": 0, "search": search})
    run_train(params.data, train, paths)  # here: the outputs a developer committed
    committed = _outputs(paths)

    with a_worker_killed_when_busy(cluster) as killed:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        try:
            run_train(params.data, train, paths)
        except ClusterError as exc:
            assert "a Dask worker of tcp://127.0.0.1:" in str(exc) and "died" in str(exc), exc
            assert "nothing was written" in str(exc)
    assert killed.is_set(), "the worker was never busy: the test proved nothing"
    # Either Dask ran the lost fits again (the same outputs) or the stage stopped before writing.
    assert _outputs(paths) == committed


def test_a_worker_with_other_package_versions_is_named(cluster, tmp_path, monkeypatch):
    """A real worker from another environment: distributed's version, toolz one release older."""
    import distributed
    import toolz

    other = tmp_path / "other-env"
    uv = shutil.which("uv") or pytest.fail("uv is on PATH in this project's environment")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(other)], check=True)
    older_toolz = "1.0.0" if toolz.__version__ != "1.0.0" else "0.12.1"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(other / "bin" / "python"),
            f"distributed=={distributed.__version__}",
            f"toolz=={older_toolz}",
        ],
        check=True,
    )
    _without_workers(cluster)
    worker = subprocess.Popen(
        [
            str(other / "bin" / "dask"),
            "worker",
            cluster.scheduler_address,
            "--host",
            "127.0.0.1",
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        with pytest.raises(ClusterError) as raised, engine():
            pass
    finally:
        worker.terminate()
        worker.wait(30)
    message = str(raised.value)
    assert f"toolz {toolz.__version__} here, {older_toolz} on worker" in message, message
    assert "runs other versions than this environment" in message and "\n" not in message


def test_a_scheduler_without_workers_is_named(cluster, monkeypatch):
    _without_workers(cluster)
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    # The wait is the product's; its length is not what is tested.
    monkeypatch.setattr("mlcd.cluster.CONNECT_SECONDS", 2)
    expected = r"has no workers after 2 s; start some \(`dask worker tcp://"
    with pytest.raises(ClusterError, match=expected), engine():
        pass
