"""train.estimator: xgboost with data.partition_rows on a Dask cluster: xgboost.dask trains across the
workers, each reading its own partitions of the split.

Held against the one-machine streamed fit of the same split: the bundle passes its ONNX parity check,
the metrics agree within the lock check's cluster rule, and that rule calls the outputs "equivalent"
with the measured difference. A worker that cannot read the split (another user, as on a machine
without the shared storage) is one error naming the fix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcd.ci.reproduce import _trained_on_a_cluster
from mlcd.cluster import SCHEDULER_ENV, loopback_cluster
from mlcd.config import load_params, parse_params
from mlcd.errors import ClusterError
from mlcd.modeling.evaluate import run_evaluate
from mlcd.modeling.package import run_package
from mlcd.modeling.train import run_train
from mlcd.reproducibility.equivalence import Comparison, Verdict, judge_by_metrics

from ..data.test_partitions import _project, _stages
from ..data.test_real_targets import penguins
from ..helpers import PROJECT_ROOT, run_pipeline_in_process
from .test_xgboost_partitions import _sections

pytestmark = pytest.mark.slow  # a LocalCluster of processes, XGBoost across them


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster(2) as started:
        yield started


def _table(rows: int = 4000) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=8, n_informative=5, flip_y=0.05, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


class _Committed:
    """HEAD's outputs as the lock check reads them (DVCFileSystem.read_bytes), from a saved copy."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read_bytes(self, path: str) -> bytes:
        return self.files[path]


def test_xgboost_dask_across_two_workers_is_equivalent_by_metrics(cluster, tmp_path, monkeypatch):
    """16 bins over 4,000 rows of continuous features: the workers' merged sketches pick other split
    points than one process does, so the models differ and only their metrics can judge them."""
    project = _project(tmp_path, _table(), "label")
    sections = _sections({"train": {"xgboost": {"max_bin": 16}}}, 500)
    # In params.yaml, where the lock check reads them.
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name] = {**raw[name], **values}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy2(PROJECT_ROOT / "dvc.yaml", project)  # which stages follow train
    # Committed: trained in one process, 500 rows at a time.
    paths, _ = run_pipeline_in_process(project, {})
    committed = {"metrics/metrics.json": paths.metrics.read_bytes(), "model": paths.model.read_bytes()}

    # Reproduced: 500-row partitions over 2 workers, each sketching and summing its own share.
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    params = parse_params(sections)
    run_train(params.data, params.train, paths)
    run_evaluate(params.data, params.evaluate, paths)
    manifest = run_package(params, paths)
    assert manifest.parity is not None and manifest.parity.label_mismatches == 0
    assert manifest.parity.max_abs_diff <= manifest.parity.tolerance
    assert paths.model.read_bytes() != committed["model"], "the cluster's shape changed nothing: no test"
    # The same number of workers: the same shares, ranks and model, byte for byte.
    first = paths.model.read_bytes()
    run_train(params.data, params.train, paths)
    assert paths.model.read_bytes() == first

    # The lock check's rule, as `mlcd ci reproduce` applies it to the stages from train on.
    found = [
        Comparison("preprocess", "data/processed", Verdict.EQUIVALENT, "same values"),
        Comparison("train", "models/model.skops", Verdict.DIFFERENT, "predictions differ by up to 0.2"),
        Comparison("package", "models/bundle/model.onnx", Verdict.DIFFERENT, "predictions differ"),
    ]
    params = load_params(project / "params.yaml")
    judged = _trained_on_a_cluster(project, params, _Committed(committed), found)
    assert judged[0] == found[0]
    assert {c.verdict for c in judged[1:]} == {Verdict.EQUIVALENT}, judged
    detail = judged[1].detail
    assert detail.startswith(
        "trained by XGBoost across Dask workers, whose model depends on the cluster's shape: "
    )
    # Measured here, two runs on the same 2 workers: roc_auc 0.9645 -> 0.9612 and -> 0.9626 (which
    # worker gets which partition varies too), accuracy and f1 by 0.003 to 0.006.
    assert "test metrics within the gate's max_drop: " in detail and "roc_auc 0.964457 -> " in detail


def test_the_cluster_rule_calls_a_real_change_different():
    before = json.dumps({"accuracy": 0.97, "roc_auc": 0.99}).encode()
    after = json.dumps({"accuracy": 0.90, "roc_auc": 0.99}).encode()
    verdict, detail = judge_by_metrics(before, after, {"accuracy": 0.02, "roc_auc": 0.01})
    assert verdict is Verdict.DIFFERENT
    assert "past the gate's max_drop in ['accuracy']" in detail and "0.97 -> 0.9 (0.07, limit 0.02)" in detail


def test_a_worker_that_cannot_read_the_split_names_shared_storage(tmp_path, monkeypatch):
    """A worker in its own mount namespace, with an empty filesystem over the project: as a machine
    without the shared storage sees the split's path."""
    project = _project(tmp_path, penguins(), "species")
    worker = (
        f"mount -t tmpfs none {project} && exec {sys.executable} -m distributed.cli.dask_worker "
        "{address} --nthreads 1 --host 127.0.0.1 --no-dashboard --no-nanny"
    )
    with loopback_cluster(0) as empty:
        elsewhere = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", worker.format(address=empty.scheduler_address)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            monkeypatch.setenv(SCHEDULER_ENV, empty.scheduler_address)
            with pytest.raises(ClusterError, match=r"cannot read the training split.*shared storage"):
                run_pipeline_in_process(project, _sections({}, 40))
            assert not list((project / "models").glob("*.skops")), "a model was written"
        finally:
            elsewhere.kill()
            elsewhere.wait()


def test_a_worker_killed_while_xgboost_trains_ends_train_with_one_error_and_nothing_written(
    tmp_path, monkeypatch
):
    """SIGKILL, not a nanny's restart: the worker's peer sockets close mid-round. Before the collective's
    timeout was set, the other worker waited on its lost peer without end."""
    import os
    import signal
    import threading
    import time

    project = _project(tmp_path, _table(60_000), "label")
    params = parse_params(_sections({"train": {"xgboost": {"n_estimators": 2000, "max_depth": 8}}}, 5000))
    paths, _ = _stages(project, params)  # the split only: train is what is under test
    with loopback_cluster(2) as started:
        from distributed import Client

        with Client(started) as client:
            places = client.run(lambda dask_worker: (os.getpid(), dask_worker.local_directory))
        victim_pid, victim_dir = places[sorted(places)[1]]

        def kill_once_training() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not list(Path(victim_dir).glob("mlcd-xgboost-pages-*")):
                time.sleep(0.05)
            time.sleep(0.5)  # into the boosting rounds
            os.kill(victim_pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_once_training)
        monkeypatch.setenv(SCHEDULER_ENV, started.scheduler_address)
        began = time.monotonic()
        killer.start()
        with pytest.raises(ClusterError, match=r"stopped: a peer was lost \(.+\); nothing was written"):
            run_train(params.data, params.train, paths)
        killer.join()
        print(f"train ended {time.monotonic() - began:.1f} s after it began")
        assert time.monotonic() - began < 120
    assert not paths.model.exists(), "a model was written"


def test_a_worker_restarted_by_its_nanny_while_xgboost_trains_ends_train_at_once(tmp_path, monkeypatch):
    """The nanny's restart (past the memory limit) while the matrices are built: the worker's task may
    run nowhere else, so Dask held it and the other worker waited on its peer until the collective's
    timeout (10 minutes, 20M rows on 2 workers of 900 MB). The driver now sees the worker leave."""
    import threading
    import time

    from distributed import Client

    project = _project(tmp_path, _table(60_000), "label")
    params = parse_params(_sections({"train": {"xgboost": {"n_estimators": 2000, "max_depth": 8}}}, 5000))
    paths, _ = _stages(project, params)
    with loopback_cluster(2) as started, Client(started) as client:
        places = client.run(lambda dask_worker: dask_worker.local_directory)
        victim = sorted(places)[1]

        def restart_once_building() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not list(Path(places[victim]).glob("mlcd-xgboost-pages-*")):
                time.sleep(0.05)
            client.restart_workers([victim])

        restarter = threading.Thread(target=restart_once_building)
        monkeypatch.setenv(SCHEDULER_ENV, started.scheduler_address)
        began = time.monotonic()
        restarter.start()
        with pytest.raises(
            ClusterError, match=rf"worker {victim} left while it ran its share .+ nothing was written"
        ):
            run_train(params.data, params.train, paths)
        restarter.join()
        print(f"train ended {time.monotonic() - began:.1f} s after it began")
        assert time.monotonic() - began < 120
    assert not paths.model.exists(), "a model was written"
