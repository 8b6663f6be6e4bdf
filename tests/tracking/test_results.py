"""tracking/results.py gathers a run's results from the workspace: params flattened as MLflow takes
them, metrics as numbers, and dvc.lock's md5s (fast: the in-process pipeline, no dvc)."""

import shutil
import subprocess

from mlcd.dvcfiles import read_lock
from mlcd.tracking.results import collect

from ..helpers import committed_text


def test_workspace_results_carry_params_metrics_and_lock_hashes(built_project, tmp_path):
    root = tmp_path / "project"  # a copy: the built project is shared with other tests
    shutil.copytree(built_project, root)
    for name in ("dvc.yaml", "dvc.lock"):
        (root / name).write_text(committed_text(name))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "dvc.yaml", "dvc.lock", "params.yaml"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=root, check=True
    )
    results = collect(root, None, tmp_path / "work")
    assert results.params["train.estimator"] == "logistic_regression"
    assert results.params["gate.max_drop.roc_auc"] == "0.01"
    assert 0.9 < results.metrics["roc_auc"] <= 1
    lock = read_lock(root)
    assert lock is not None
    assert results.hashes["bundle"] == lock.output_md5("models/bundle")
    assert results.key.startswith(results.commit + ":")
