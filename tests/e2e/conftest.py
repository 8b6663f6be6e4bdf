"""A project with three releases, each reproduced with other regularisation and pushed to its remote."""

from pathlib import Path

import pytest

from ..helpers import Repo, clone_repo
from ..system import built_once

C_VALUES = {"1.0.0": 1.0, "1.1.0": 0.05, "1.2.0": 0.002}


def bundle_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def head(repo: Repo) -> str:
    return repo.run("git", "rev-parse", "HEAD").stdout.strip()


@pytest.fixture(scope="session")
def released(reproduced_repo, tmp_path_factory):
    """Three releases with different regularisation, each pushed; what each bundle held.
    Tests clone the repository (`repo`) before changing anything. The first release is the
    reproduced project as it is (C is 1.0 in params.yaml): no second run from scratch."""
    import json

    def build(folder):
        repo = clone_repo(reproduced_repo, folder / "repo")
        produced = {}
        for version, c in C_VALUES.items():
            repo.set_params(**{"train.logistic_regression.C": c})
            repo.dvc("repro")
            repo.commit(f"train with C={c}")
            repo.dvc("push")
            repo.mlcd("release", version)
            bundle = repo.path / "models" / "bundle"
            produced[version] = {
                "files": bundle_bytes(bundle),
                "manifest": json.loads((bundle / "manifest.json").read_text()),
                "commit": head(repo),
            }
        return repo, produced

    return built_once("released", tmp_path_factory, build)


@pytest.fixture
def repo(released, tmp_path) -> Repo:
    return clone_repo(released[0], tmp_path / "repo")
