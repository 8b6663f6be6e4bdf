"""The pipeline's search on a real Dask cluster (LocalCluster processes on 127.0.0.1): where the
work ran changes nothing DVC tracks. Compared with the lock the repository committed, not with a
file this run wrote."""

from __future__ import annotations

import json

import pytest

from mlcd.cluster import SCHEDULER_ENV
from mlcd.http_client import free_port

from ..helpers import Repo, run

pytestmark = pytest.mark.e2e


def test_a_search_on_a_cluster_leaves_the_committed_lock_unchanged(repo_copy: Repo):
    repo = repo_copy
    repo.set_params(
        **{
            "train.search.kind": "grid",
            "train.search.cv_folds": 3,
            "train.search.space.logistic_regression": {"C": [0.01, 0.1, 1.0], "max_iter": [300, 1000]},
        }
    )
    repo.dvc("repro")  # in this process: the lock a developer commits
    repo.commit("grid search on C and max_iter")
    committed = repo.run("git", "show", "HEAD:dvc.lock").stdout
    found = json.loads((repo.path / "metrics" / "search.json").read_text())
    assert found["kind"] == "grid" and found["candidates"] == 6, found

    # An unreachable scheduler: one error line naming the variable; the committed outputs stay.
    nowhere = {SCHEDULER_ENV: f"tcp://127.0.0.1:{free_port()}"}
    failed = run(["dvc", "repro", "-s", "-f", "train"], repo.path, check=False, env=nowhere)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert "error: cannot reach the Dask scheduler" in said and SCHEDULER_ENV in said, said[-3000:]
    assert "Traceback" not in said
    # DVC removes a stage's outputs before running it; nothing else changed, nothing half-written.
    changed = repo.run("git", "status", "--porcelain").stdout.splitlines()
    assert all(line.startswith(" D metrics/") for line in changed), changed
    repo.run("git", "checkout", "--", "metrics")
    repo.dvc("checkout")

    # The same stage, its fits on two worker processes: every output md5-identical.
    clustered = run(["dvc", "repro", "-s", "-f", "train"], repo.path, env={SCHEDULER_ENV: "local:2"})
    assert "on Dask at tcp://127.0.0.1:" in clustered.stdout + clustered.stderr
    assert (repo.path / "dvc.lock").read_text() == committed, repo.run("git", "diff").stdout
    assert json.loads((repo.path / "metrics" / "search.json").read_text()) == found
    assert repo.run("git", "status", "--porcelain").stdout == ""
