"""train.estimator: xgboost beyond memory on a Dask cluster (data.partition_rows with MLCD_DASK_SCHEDULER):
XGBoost's collective trains one booster across the workers, each streaming its own share of the
split's partitions through XGBoost's external-memory matrix.

Not `xgboost.dask.train`: it holds every worker's share of the encoded split as Dask arrays in the
worker's memory, so a split larger than the workers' memory stopped it (measured: 6M rows on 2 workers
of 1 GB). This is XGBoost's documented recipe for distributed external memory (a RabitTracker, a
CommunicatorContext per worker, `ExtMemQuantileDMatrix`), with Dask placing one task on each worker:
a worker holds one partition at a time and XGBoost's compressed pages, which it keeps on its local disk.

The driver makes the first pass (modeling/xgboost_partitions.first_pass: the text features' levels and
the classes, one partition in memory at a time) and fits the encoder; the workers then read the
split's Parquet row groups themselves, so they need the project's path on shared storage (README
"Scale out"). The tracker runs in the scheduler, as xgboost.dask runs it, so the workers reach it
wherever the driver runs (a CI job outside the cluster's network).

Not identical to the one-machine fit, and not even to another cluster's: distributed XGBoost merges
each worker's quantile sketch and sums their histograms, so the split points depend on how the rows
fell across workers. The lock check judges such a model by its test metrics within the gate's
max_drop (reproducibility/equivalence.judge_by_metrics) and says "equivalent", never "identical".
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from mlcd.config import TrainParams
from mlcd.data.schema import DatasetSchema
from mlcd.errors import ClusterError
from mlcd.modeling.xgboost_partitions import Objective, external_memory_matrix, first_pass

# A collective operation waits this long for a peer before it fails: a worker killed mid-training
# (SIGKILL, out of memory) otherwise leaves the others waiting on it without end. Generous, because a
# round on a large share can keep a peer busy for minutes before its next exchange.
COLLECTIVE_TIMEOUT_SECONDS = 600
# How often the driver checks that every worker with a share is still in the cluster.
WATCH_SECONDS = 1.0


# A chunk of the split: one of its Parquet files and row groups of it (data/tables.py).
Chunk = tuple[str, list[int]]


def row_group_chunks(train: Path, rows: int) -> list[Chunk]:
    """The split's Parquet row groups gathered into chunks of about `rows` rows (at least one group
    each, within one file): one batch of XGBoost's input per chunk."""
    from mlcd.data.tables import row_groups

    chunks: list[tuple[Chunk, int]] = []
    for file, group, size in row_groups(train):
        path = str(file.resolve())
        if chunks and chunks[-1][0][0] == path and chunks[-1][1] + size <= rows:
            (_, groups), total = chunks[-1]
            chunks[-1] = ((path, [*groups, group]), total + size)
        else:
            chunks.append(((path, [group]), size))
    return [chunk for chunk, size in chunks if size]


class _Share:
    """One worker's chunks of the split as XGBoost's DataIter asks for them: encoded, labels coded."""

    def __init__(
        self, chunks: list[Chunk], schema: DatasetSchema, features: Any, objective: Objective
    ) -> None:
        self.chunks, self.schema = chunks, schema
        self.features, self.objective = features, objective
        self._next = 0

    def reset(self) -> None:
        self._next = 0

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        import pyarrow.parquet as pq

        from mlcd.data.model_input import split_frame

        if self._next == len(self.chunks):
            return None
        file, groups = self.chunks[self._next]
        self._next += 1
        columns = [*self.schema.feature_names, self.schema.target.name]
        table = pq.ParquetFile(file).read_row_groups(groups, columns=columns)
        x, y = split_frame(table, self.schema, float32=True)
        labels, weights = self.objective.targets(y)
        return np.ascontiguousarray(self.features.transform(x), dtype=np.float32), labels, weights


def _can_read(train: str) -> int:
    """On a worker, before any training starts: the split's row count, or the OSError of a worker
    that cannot see it (no shared storage)."""
    from mlcd.data.tables import row_count

    return row_count(Path(train))


def _start_tracker(workers: int, timeout: int, dask_scheduler: Any = None) -> dict[str, Any]:
    """In the scheduler: XGBoost's tracker for `workers` peers, on the scheduler's own host; the
    arguments each peer connects with. A thread waits on it, as xgboost.dask's does; the tracker's
    timeout ends that wait when a peer never comes or never finishes."""
    from threading import Thread

    from distributed.comm import get_address_host
    from xgboost.tracker import RabitTracker

    host = get_address_host(dask_scheduler.address)
    tracker = RabitTracker(n_workers=workers, host_ip=host, sortby="task", timeout=timeout)
    tracker.start()
    Thread(target=tracker.wait_for, daemon=True).start()
    return dict(tracker.worker_args())


def _train_share(
    rank: int, share: _Share, objective: Objective, rounds: int, bins: int, peers: dict[str, Any]
) -> bytes:
    """On a worker: its share streamed into XGBoost's external-memory matrix (pages in the worker's
    local directory), trained with the other workers as one booster; the booster's bytes."""
    import xgboost
    from distributed import get_worker
    from xgboost import collective

    # dmlc_task_id orders the peers (sortby="task"): rank 0 is the first share, whichever worker runs it.
    args = {**peers, "dmlc_task_id": f"{rank:06d}", "dmlc_timeout": COLLECTIVE_TIMEOUT_SECONDS}
    with (
        collective.CommunicatorContext(**args),
        tempfile.TemporaryDirectory(prefix="mlcd-xgboost-pages-", dir=get_worker().local_directory) as pages,
    ):
        matrix = external_memory_matrix(share, str(Path(pages) / "cache"), bins)
        booster = xgboost.train(objective.booster_params, matrix, num_boost_round=rounds)
        del matrix
    return bytes(booster.save_raw())


def _on_each_worker(client: Any, tasks: list[tuple[str, Any, tuple[Any, ...]]]) -> list[Any]:
    """Each (worker, function, args) run there and nowhere else, all at once; their results.

    The first to fail ends the wait, and so does a worker that leaves the cluster (killed, or
    restarted by its nanny past its memory limit): its task may run nowhere else, so Dask would hold
    it for ever, and its peers wait on it until the collective's timeout. Measured before this
    watch: 20M rows on 2 workers of 900 MB, one restarted while the matrices were being built, and
    train waited with the other idle."""
    from distributed import wait

    futures = [
        client.submit(function, *args, workers=[worker], allow_other_workers=False, pure=False, retries=0)
        for worker, function, args in tasks
    ]
    places = {worker for worker, _, _ in tasks}
    try:
        while True:
            for future in futures:
                if future.status == "error":
                    future.result()  # raises what the task raised
            running = [future for future in futures if future.status != "finished"]
            if not running:
                return [future.result() for future in futures]
            # After the tasks' own errors, which name what broke better (a peer's lost socket).
            gone = sorted(places - set(client.run_on_scheduler(_worker_addresses)))
            if gone:
                raise ClusterError(
                    f"the Dask worker {gone[0]} left while it ran its share of XGBoost's training "
                    "(killed, or restarted by its nanny past its memory limit); nothing was written. "
                    "Look in the workers' logs, give them more memory or more workers, then run again"
                )
            with contextlib.suppress(TimeoutError):  # a second gone by: look at the workers again
                wait(running, timeout=WATCH_SECONDS, return_when="FIRST_COMPLETED")
    finally:
        client.cancel(futures)


def _worker_addresses(dask_scheduler: Any) -> list[str]:
    return list(dask_scheduler.workers)


def fit_xgboost_on_dask(
    pipeline: Pipeline, schema: DatasetSchema, params: TrainParams, train: Path, rows: int, client: Any
) -> tuple[Pipeline, int]:
    """The pipeline fitted by XGBoost across the workers of the cluster `client` reaches, and the
    split's row count."""
    import xgboost

    features, objective, train_rows = first_pass(pipeline, schema, params, train, rows)
    # Absolute: a worker's working directory is its own.
    source, chunks = str(train.resolve()), row_group_chunks(train, rows)
    workers = sorted(client.scheduler_info()["workers"])[: len(chunks)]
    try:
        _on_each_worker(client, [(worker, _can_read, (source,)) for worker in workers])
    except OSError as exc:
        raise ClusterError(
            f"a Dask worker of {client.scheduler.address} cannot read the training split ({exc}); "
            "workers read the partitions themselves, so they need this project's path on shared "
            'storage (README "Scale out")'
        ) from None
    peers = client.run_on_scheduler(_start_tracker, len(workers), COLLECTIVE_TIMEOUT_SECONDS)
    rounds, bins = params.xgboost.n_estimators, params.xgboost.max_bin
    tasks = []
    for rank, worker in enumerate(workers):
        share = _Share(chunks[rank :: len(workers)], schema, features, objective)
        tasks.append((worker, _train_share, (rank, share, objective, rounds, bins, peers)))
    try:
        boosters = _on_each_worker(client, tasks)
    except xgboost.core.XGBoostError as exc:
        # The workers train as one ring: one lost (killed, or restarted by its nanny past its memory
        # limit) ends the training for all; XGBoost's collective has no resilience.
        # XGBoost's message is a trace of nested steps; the innermost failure names what broke.
        failed = [line.rsplit("]: ", 1)[-1] for line in str(exc).splitlines() if "failed" in line.lower()]
        first = (failed or ["XGBoostError"])[0].strip()[:200]
        raise ClusterError(
            f"XGBoost's training across the Dask workers of {client.scheduler.address} stopped: a peer "
            f"was lost ({first}); nothing was written. Look in the workers' logs (memory limit? killed?), "
            "then run again"
        ) from None
    booster = xgboost.Booster(model_file=bytearray(boosters[0]))
    estimator = objective.estimator(pipeline.named_steps["model"], booster)
    return Pipeline([("features", features), ("model", estimator)]), train_rows
