"""Shared fixtures: real git repositories holding a copy of this project, driven by real dvc.

Helpers (Repo, new_repo, run, ...) live in tests/helpers.py; import them from there.
"""

from __future__ import annotations

import os

# One OpenMP (and so OpenBLAS) thread per process, set before numpy or scikit-learn load: two test
# processes share two cores, and a second spinning thread in each made scikit-learn's histogram
# boosting 2-4 times slower whenever the other process was busy (measured: 5.7 s against 3.0 s
# beside one busy core, 12.6 s in a full run). Every process a test starts inherits it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import (
    VENV_BIN,
    Repo,
    clone_repo,
    copy_params_and_data,
    new_repo,
    run_pipeline_in_process,
    start_service,
)
from .system import built_once

# Markers and fixtures that make a test slow: kept out of the fast tier (`-m "not slow"`).
SLOW_MARKERS = {"e2e", "image", "ci", "needs_podman", "needs_node", "needs_kubectl", "needs_promtool"}
SLOW_FIXTURES = {"reproduced_repo", "repo_copy"}
# With pytest-xdist (README "Development"), tests that drive podman (its images, the local base
# images, containers and nginx colours on this host) run in one process, one after another; the
# installs other tests share (apt, npm's tools, the MLflow venv) take tests/system.machine_lock.
# Every other module stays whole in one process, so its module fixtures (a reproduced repo, a
# server) are made once.
PODMAN_MARKERS = {"image", "needs_podman"}


# A test's rough cost in seconds by what it drives, to hand out the costliest groups first: a
# pipeline in gitlab-ci-local or a container takes about a minute, a dvc repro about twenty seconds.
COST_SECONDS = (({"ci", "image", "needs_podman"}, 60.0), ({"e2e"}, 20.0), ({"slow"}, 10.0))
FAST_COST_SECONDS = 0.2


def _cost(marked: set[str]) -> float:
    return next((seconds for names, seconds in COST_SECONDS if marked & names), FAST_COST_SECONDS)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    groups: dict[pytest.Item, str] = {}
    costs: dict[str, float] = {}
    for item in items:
        marked = {mark.name for mark in item.iter_markers()}
        fixtures = set(getattr(item, "fixturenames", ()))
        if marked & SLOW_MARKERS or fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
            marked.add("slow")
        if marked & PODMAN_MARKERS:
            group = "podman"
        elif "spread" in marked:  # tests that share no module fixture: either process may take each
            group = item.nodeid
        else:
            group = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item] = group
        costs[group] = costs.get(group, 0.0) + _cost(marked)
    # Costliest group first (xdist hands groups out in this order: `--no-loadscope-reorder` in
    # pyproject.toml, as its default order, most tests first, left one-test minutes for the end
    # while the other process idled). The sort is stable, so a group's tests keep their order.
    items.sort(key=lambda item: -costs[groups[item]])


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The project reproduced once from scratch; copy it (clone_repo) before changing it."""

    def build(folder: Path) -> Repo:
        repo = new_repo(folder / "repo")
        repo.dvc("repro")
        return repo

    return built_once("reproduced", tmp_path_factory, build)


@pytest.fixture
def repo_copy(reproduced_repo: Repo, tmp_path: Path) -> Iterator[Repo]:
    yield clone_repo(reproduced_repo, tmp_path / "repo")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (no git) with params and schemas, as the working directory."""
    copy_params_and_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default pipeline run once in this process (no dvc, no cross-validation): data and bundle.

    For the fast tier: what serving and data checks need, in seconds rather than a `dvc repro`.
    """
    project = copy_params_and_data(tmp_path_factory.mktemp("built"))
    run_pipeline_in_process(project, {"train": {"cv_folds": 0}})
    return project


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 KiB filesystem (tmpfs; the tests run as root, as CI does)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True
    )
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr.decode()}"
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture
def s3_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on loopback (in memory, empty) and the AWS variables that point there."""
    from mlcd.http_client import free_port

    port = str(free_port())
    process = start_service(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", port],
        f"http://127.0.0.1:{port}/",
        tmp_path / "moto.log",
    )
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    yield endpoint
    process.terminate()
    process.wait(10)
