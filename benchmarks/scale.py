"""Scale-out figures (issue 24): a hyperparameter search and batch scoring, here and on Dask.

Run: uv run python benchmarks/scale.py search [--rounds N]
     uv run python benchmarks/scale.py predict [--rows N] [--rounds N]   (needs models/bundle: dvc repro)
     uv run python benchmarks/scale.py data [--rows N ...] [--partition-rows P] [--train xgboost]
                                           [--cluster-memory 1GB]

search: a grid of 6 random-forest candidates (10 or 20 trees) x 4 folds (24 fits) on 100,000
synthetic rows of 20 features, through mlcd's own run_search, three ways in alternation: one
process, joblib's default backend (loky, 2 processes) and a LocalCluster of 2 worker processes on 127.0.0.1
(MLCD_DASK_SCHEDULER=local:2, its start included). Each way must pick the same best values.

predict: `mlcd predict`'s predict_table on N rows (test rows of the bundle's data drawn with
replacement), here and on a LocalCluster of 2 workers, against a plain onnxruntime loop over the same
file (read a batch, make the float32 matrix, run the session: no validation, no output file).
data: the data stages (ingest, validate, preprocess) on N synthetic rows, each in its own process as
DVC runs it, read whole (data.partition_rows: null) and in partitions of P rows: each stage's wall
time and peak RSS (the process's ru_maxrss). Whole is skipped where it would not fit (about 600 bytes
a row: 10M rows need 6 GB, 50M about 30 GB). With --train ESTIMATOR, train (cv_folds 0) and evaluate
run after them (and package), and the test metrics are printed (xgboost streams the split in partitions). With
--cluster-memory M as well, the partitioned run's train uses a LocalCluster of 2 worker processes on
127.0.0.1 with a Dask memory_limit of M each (XGBoost across them, each streaming its share), and the
workers' peak RSS is printed.
Prints tables; asserts nothing but the equal best values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _project import ROOT

SEARCH_ROWS = 100_000
WAYS = ("one process", "joblib default (loky, 2)", "Dask LocalCluster (2 processes)")


def search_once(way: str, x: object, y: object) -> tuple[float, dict[str, object]]:
    import joblib
    from sklearn.pipeline import Pipeline

    from mlcd.cluster import SCHEDULER_ENV, Engine, engine
    from mlcd.config import SearchParams, TrainParams
    from mlcd.modeling.search import run_search
    from mlcd.modeling.train import build_estimator

    params = TrainParams(
        estimator="random_forest",
        search=SearchParams(
            kind="grid",
            cv_folds=4,
            space={"random_forest": {"n_estimators": [10, 20], "min_samples_leaf": [1, 3, 5]}},
        ),
    )
    pipeline = Pipeline([("model", build_estimator(params))])
    started = time.perf_counter()
    if way == WAYS[0]:
        found = run_search(pipeline, x, y, params, Engine(None))
    elif way == WAYS[1]:
        with joblib.parallel_config(backend="loky", n_jobs=2):  # n_jobs=None in the search defers to it
            found = run_search(pipeline, x, y, params, Engine(None))
    else:
        os.environ[SCHEDULER_ENV] = "local:2"
        try:
            with engine() as where:
                found = run_search(pipeline, x, y, params, where)
        finally:
            del os.environ[SCHEDULER_ENV]
    return time.perf_counter() - started, found["best"]


def bench_search(rounds: int) -> None:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=SEARCH_ROWS, n_features=20, n_informative=8, random_state=0)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    best: dict[str, dict[str, object]] = {}
    for round_ in range(rounds):
        order = WAYS if round_ % 2 == 0 else tuple(reversed(WAYS))  # alternate what runs first
        for way in order:
            took, best[way] = search_once(way, x, y)
            seconds[way].append(took)
            print(f"round {round_ + 1}: {way} {took:.1f} s, best {best[way]}", flush=True)
    assert len({repr(b) for b in best.values()}) == 1, f"the ways disagree on the best values: {best}"
    _ratio_table("24 fits, 100k rows", seconds, WAYS[0])
    print(f"\nbest values (all three): {best[WAYS[0]]}; {rounds} rounds")


def bench_predict(rows: int, rounds: int) -> None:
    import numpy as np
    import pandas as pd

    bundle = ROOT / "models" / "bundle"
    test = pd.read_parquet(ROOT / "data" / "processed" / "test.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.parquet"
        drawn = np.random.default_rng(0).integers(0, len(test), rows)
        test.iloc[drawn].reset_index(drop=True).to_parquet(source, row_group_size=100_000)
        ways: dict[str, Callable[[], None]] = {
            "plain onnxruntime loop": lambda: _plain_loop(source, bundle),
            "mlcd predict": lambda: _predict(source, Path(tmp) / "out.parquet", bundle, ""),
            "mlcd predict, Dask (2 processes)": lambda: _predict(
                source, Path(tmp) / "out.parquet", bundle, "local:2"
            ),
        }
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        for round_ in range(rounds):
            for way in ways if round_ % 2 == 0 else reversed(list(ways)):
                started = time.perf_counter()
                ways[way]()
                seconds[way].append(time.perf_counter() - started)
    print(f"| {rows:,} rows | median rows/s | min | max | seconds (median) |")
    print("|---|---:|---:|---:|---:|")
    for way, values in seconds.items():
        rates = [rows / s for s in values]
        print(
            f"| {way} | {statistics.median(rates):,.0f} | {min(rates):,.0f} | {max(rates):,.0f} "
            f"| {statistics.median(values):.1f} |"
        )
    print(f"\n{rounds} rounds, alternating")


def _predict(source: Path, target: Path, bundle: Path, scheduler: str) -> None:
    from mlcd.cluster import SCHEDULER_ENV
    from mlcd.serve.batch import predict_table

    os.environ[SCHEDULER_ENV] = scheduler
    try:
        predict_table(source, target, bundle, batch_rows=10_000)
    finally:
        del os.environ[SCHEDULER_ENV]


def _plain_loop(source: Path, bundle: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    import pyarrow.dataset as ds

    from mlcd.bundle import open_bundle

    opened = open_bundle(bundle)
    names = [f.name for f in opened.schema.features]
    session = ort.InferenceSession(opened.model_file.read_bytes(), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    for batch in ds.dataset(source).to_batches(columns=names, batch_size=10_000):
        matrix = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False) for n in names])
        session.run(None, {feed: matrix.astype(np.float32)})


DATA_STAGES = ("ingest", "validate", "preprocess")
WHOLE_BYTES_PER_ROW = 600  # measured: validate's peak read whole, 6.2 GB at 10M rows


@dataclass(frozen=True)
class StageRun:
    seconds: float  # wall
    cpu_seconds: float  # user + system
    peak_gb: float  # peak RSS
    disk_read_gb: float  # read from the disk, not the page cache (ru_inblock: 512-byte blocks)

    def cells(self, rows: int) -> str:
        return (
            f"{self.seconds:.1f} | {self.seconds / rows * 1e6:.2f} | {self.cpu_seconds / rows * 1e6:.2f} "
            f"| {self.disk_read_gb:.1f} | {self.peak_gb:.2f}"
        )


def _stage_process(stage: str, project: Path) -> StageRun:
    """`python -m mlcd <stage>` in `project`, measured."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlcd", stage], cwd=project, env=env, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{stage} failed ({process.returncode}) in {project}")
    cpu = usage.ru_utime + usage.ru_stime
    return StageRun(
        time.perf_counter() - started, cpu, usage.ru_maxrss / 1024**2, usage.ru_inblock * 512 / 1e9
    )


def _workers_peak_gb(scheduler: str) -> list[float]:
    """Each worker process's peak RSS so far (its ru_maxrss), in GB."""
    import resource

    from distributed import Client

    with Client(scheduler) as client:
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2)
    return sorted(peaks.values())


def bench_data(
    rows_list: list[int],
    partition_rows: int,
    estimator: str | None,
    cluster_memory: str | None = None,
    only_partitions: bool = False,
) -> None:
    import json
    import shutil

    import yaml

    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    print("| rows | read | stage | seconds | µs per row | CPU µs per row | read from disk GB | peak RSS GB |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for rows in rows_list:
        for partitions in (partition_rows,) if only_partitions else (None, partition_rows):
            if partitions is None and rows * WHOLE_BYTES_PER_ROW > 0.8 * available:
                needed = rows * WHOLE_BYTES_PER_ROW / 1e9
                print(f"| {rows:,} | whole | (skipped: about {needed:.0f} GB) | | | | | |", flush=True)
                continue
            with tempfile.TemporaryDirectory(prefix="mlcd-bench-data-") as folder:
                project = Path(folder)
                shutil.copy(ROOT / "params.yaml", project / "params.yaml")
                shutil.copytree(ROOT / "data" / "schemas", project / "data" / "schemas")
                params = yaml.safe_load((project / "params.yaml").read_text())
                params["data"] |= {"source": "synthetic", "rows": rows, "partition_rows": partitions}
                stages = DATA_STAGES
                if estimator:
                    params["train"] |= {"estimator": estimator, "cv_folds": 0}
                    stages = (*DATA_STAGES, "train", "evaluate", "package")
                (project / "params.yaml").write_text(yaml.safe_dump(params))
                read = "whole" if partitions is None else f"{partitions:,} at a time"
                for stage in stages:
                    if stage == "train" and partitions and cluster_memory:
                        _train_on_a_cluster(project, rows, read, cluster_memory)
                        continue
                    run = _stage_process(stage, project)
                    print(f"| {rows:,} | {read} | {stage} | {run.cells(rows)} |", flush=True)
                if estimator:
                    metrics = json.loads((project / "metrics" / "metrics.json").read_text())
                    print(f"| {rows:,} | {read} | test metrics | {metrics} | | | | |", flush=True)


def _train_on_a_cluster(project: Path, rows: int, read: str, memory: str) -> None:
    from mlcd.cluster import SCHEDULER_ENV, loopback_cluster

    with loopback_cluster(2, memory_limit=memory) as cluster:
        os.environ[SCHEDULER_ENV] = cluster.scheduler_address
        try:
            run = _stage_process("train", project)
        finally:
            del os.environ[SCHEDULER_ENV]
        workers = " + ".join(f"{gb:.2f}" for gb in _workers_peak_gb(cluster.scheduler_address))
    print(
        f"| {rows:,} | {read} | train, XGBoost across 2 Dask workers of {memory} | {run.cells(rows)} "
        f"(workers {workers}) |",
        flush=True,
    )


def _ratio_table(title: str, seconds: dict[str, list[float]], base: str) -> None:
    print(f"| {title} | median s | min s | max s | speed-up vs {base} (median, range) |")
    print("|---|---:|---:|---:|---:|")
    for way, values in seconds.items():
        ratios = [b / v for b, v in zip(seconds[base], values, strict=True)]
        print(
            f"| {way} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["search", "predict", "data"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="predict, data: rows")
    parser.add_argument("--partition-rows", type=int, default=1_000_000, help="data: rows per partition")
    parser.add_argument("--train", metavar="ESTIMATOR", help="data: also train and evaluate this estimator")
    parser.add_argument("--cluster-memory", help="data --train xgboost: 2 Dask workers of this memory")
    parser.add_argument("--only-partitions", action="store_true", help="data: skip the whole read")
    args = parser.parse_args()
    if args.what == "search":
        bench_search(args.rounds)
    elif args.what == "data":
        bench_data(args.rows, args.partition_rows, args.train, args.cluster_memory, args.only_partitions)
    else:
        bench_predict(args.rows[0], args.rounds)


if __name__ == "__main__":  # LocalCluster's worker processes spawn and import this file again
    main()
