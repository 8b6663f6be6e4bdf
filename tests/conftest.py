"""Shared fixtures: real git repositories holding a copy of this project, driven by real dvc.

Helpers (Repo, new_repo, run, ...) live in tests/helpers.py; import them from there.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import PROJECT_ROOT, Repo, clone_repo, new_repo, tracked_project_files


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The project reproduced once from scratch; copy it (clone_repo) before changing it."""
    repo = new_repo(tmp_path_factory.mktemp("reproduced") / "repo")
    repo.dvc("repro")
    return repo


@pytest.fixture
def repo_copy(reproduced_repo: Repo, tmp_path: Path) -> Iterator[Repo]:
    yield clone_repo(reproduced_repo, tmp_path / "repo")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (no git) with params and schemas, as the working directory."""
    for relative in tracked_project_files():
        if relative.parts[0] in {"params.yaml", "data"}:
            target = tmp_path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / relative, target)
    monkeypatch.chdir(tmp_path)
    return tmp_path
