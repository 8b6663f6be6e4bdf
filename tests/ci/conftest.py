"""A git origin, developer clones and local stand-ins for GitLab, a registry and S3.

The seed repository is the reproduced project plus every other tracked file
(.gitlab-ci.yml, .ci/, tests/, uv.lock), pushed to a bare origin with its DVC
outputs and run-cache in a local remote, as a developer would leave it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlcd.http_client import free_port

from ..helpers import VENV_BIN, Repo, add_every_tracked_file, clone_repo, start_service
from ..report import fake_gitlab
from . import tools
from .gitlab_ci_local import GitlabCiLocal, publish, shared_bytecode, shared_uv_cache


@dataclass(frozen=True)
class Seed:
    repo: Repo
    origin: Path


@pytest.fixture(scope="session")
def gitlab_ci_local_binary() -> Path:
    return tools.gitlab_ci_local()


@pytest.fixture(scope="session")
def seed(reproduced_repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Seed:
    base = tmp_path_factory.mktemp("ci-seed")
    repo = clone_repo(reproduced_repo, base / "repo")
    add_every_tracked_file(repo)
    repo.commit("CI, tests and tooling")
    assert not repo.run("git", "diff", "HEAD~1", "--stat", "--", "dvc.lock").stdout, "seed's dvc.lock changed"
    repo.dvc("push", "--run-cache")
    publish(repo, base / "origin.git")
    return Seed(repo, base / "origin.git")


@pytest.fixture
def developer(seed: Seed, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A byte copy of the seed (work tree, DVC cache, its own remote copy) tracking the shared origin.

    At the same path in every test of this process (emptied first), so each CI job's build folder
    and .venv are too, and the bytecode its first run compiles serves the next (shared_bytecode).
    """
    base = tmp_path_factory.getbasetemp() / "ci-developer"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir()
    return clone_repo(seed.repo, base / "repo")


@pytest.fixture
def fake_gitlab_api() -> Iterator[tuple[fake_gitlab.FakeGitLab, str]]:
    fake = fake_gitlab.FakeGitLab()
    server, url = fake_gitlab.start(fake)
    yield fake, url
    server.shutdown()


@pytest.fixture
def gitlab(
    gitlab_ci_local_binary: Path, developer: Repo, tmp_path_factory: pytest.TempPathFactory
) -> GitlabCiLocal:
    variables = {
        **shared_uv_cache(),
        **shared_bytecode(tmp_path_factory.getbasetemp() / "ci-bytecode"),
        "DVC_REMOTE_URL": str(developer.remote),
    }
    return GitlabCiLocal(gitlab_ci_local_binary, developer.path, variables)


@dataclass(frozen=True)
class Service:
    url: str
    address: str  # host:port


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Debian's docker-registry (the CNCF distribution registry) on loopback, plain HTTP, no auth."""
    binary = tools.docker_registry()
    base = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        f"http:\n  addr: {address}\n"
    )
    process = start_service([str(binary), "serve", str(config)], f"http://{address}/v2/", base / "log")
    yield Service(f"http://{address}", address)
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """moto's S3 API on loopback (in memory), for an S3 DVC remote."""
    address = f"127.0.0.1:{free_port()}"
    host, port = address.split(":")
    log = tmp_path_factory.mktemp("moto") / "log"
    process = start_service(
        [str(VENV_BIN / "moto_server"), "-H", host, "-p", port], f"http://{address}/", log
    )
    yield Service(f"http://{address}", address)
    process.terminate()
    process.wait(10)
