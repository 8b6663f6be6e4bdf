"""train.estimator: xgboost beyond memory on a Dask cluster (data.partition_rows with MLCD_DASK_SCHEDULER):
each worker reads and encodes its own partitions of the training split, and `xgboost.dask` trains
one booster across them.

The driver makes the first pass (modeling/xgboost_partitions.first_pass: the text features' levels and
the classes, one partition in memory at a time) and fits the encoder; the workers then read the
split's Parquet row groups themselves, so they need the project's path on shared storage (README
"Scale out").

Not identical to the one-machine fit, and not even to another cluster's: distributed XGBoost merges
each worker's quantile sketch and sums their histograms, so the split points depend on how the rows
fell across workers. The lock check judges such a model by its test metrics within the gate's
max_drop (reproducibility/equivalence.judge_by_metrics) and says "equivalent", never "identical".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from mlcd.config import TrainParams
from mlcd.data.schema import DatasetSchema
from mlcd.errors import ClusterError
from mlcd.modeling.xgboost_partitions import Objective, first_pass


def row_group_chunks(train: Path, rows: int) -> list[tuple[list[int], int]]:
    """The split's Parquet row groups gathered into chunks of about `rows` rows (at least one group
    each): one task, and one block of XGBoost's input, per chunk. (indices, row count) each."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(train).metadata
    chunks: list[tuple[list[int], int]] = []
    for group in range(metadata.num_row_groups):
        size = metadata.row_group(group).num_rows
        if chunks and chunks[-1][1] + size <= rows:
            chunks[-1][0].append(group)
            chunks[-1] = (chunks[-1][0], chunks[-1][1] + size)
        else:
            chunks.append(([group], size))
    return [chunk for chunk in chunks if chunk[1]]


def _encoded_chunk(
    train: str, groups: list[int], schema: DatasetSchema, features: Any, objective: Objective
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On a worker: one chunk read, encoded, and its labels coded (weights 1.0 when unweighted)."""
    import pyarrow.parquet as pq

    from mlcd.data.model_input import split_frame

    columns = [*schema.feature_names, schema.target.name]
    table = pq.ParquetFile(train).read_row_groups(groups, columns=columns)
    x, y = split_frame(table, schema, float32=True)
    labels, weights = objective.targets(y)
    encoded = np.ascontiguousarray(features.transform(x), dtype=np.float32)
    unweighted = np.ones(len(labels))
    return encoded, labels.astype(np.float64), unweighted if weights is None else weights


def _read_on_workers(client: Any, arrays: list[Any]) -> list[Any]:
    """The arrays computed and held on the workers; a chunk a worker could not read is one error.
    (xgboost.dask would only assert that its parts finished.)"""
    from distributed import futures_of, wait

    held = client.persist(arrays)
    wait(held)
    for future in futures_of(held):
        if future.status != "error":
            continue
        exc = future.exception()
        if isinstance(exc, OSError):
            raise ClusterError(
                f"a Dask worker of {client.scheduler.address} cannot read the training split ({exc}); "
                "workers read the partitions themselves, so they need this project's path on shared "
                'storage (README "Scale out")'
            ) from None
        future.result()  # raises what the task raised
    return list(held)


def fit_xgboost_on_dask(
    pipeline: Pipeline, schema: DatasetSchema, params: TrainParams, train: Path, rows: int, client: Any
) -> tuple[Pipeline, int]:
    """The pipeline fitted by `xgboost.dask` on the cluster `client` reaches, and the split's row count."""
    import dask
    import dask.array as da
    import xgboost
    from xgboost import dask as dxgb

    features, objective, train_rows = first_pass(pipeline, schema, params, train, rows)
    width = len(features.get_feature_names_out())
    # Absolute: a worker's working directory is its own. The fitted encoder and the objective travel
    # to every task once, as one graph key each.
    source, shared = str(train.resolve()), (dask.delayed(features), dask.delayed(objective))
    x_blocks, y_blocks, w_blocks = [], [], []
    for groups, count in row_group_chunks(train, rows):
        chunk = dask.delayed(_encoded_chunk, nout=3)(source, groups, schema, *shared)
        x_blocks.append(da.from_delayed(chunk[0], shape=(count, width), dtype=np.float32))
        y_blocks.append(da.from_delayed(chunk[1], shape=(count,), dtype=np.float64))
        w_blocks.append(da.from_delayed(chunk[2], shape=(count,), dtype=np.float64))
    x, y, w = _read_on_workers(client, [da.concatenate(b) for b in (x_blocks, y_blocks, w_blocks)])
    rounds, bins = params.xgboost.n_estimators, params.xgboost.max_bin
    try:
        matrix = dxgb.DaskQuantileDMatrix(client, x, y, weight=w, max_bin=bins, missing=np.nan)
        trained = dxgb.train(client, objective.booster_params, matrix, num_boost_round=rounds)
    except (ValueError, xgboost.core.XGBoostError) as exc:
        if isinstance(exc, ValueError) and "died" not in str(exc):
            raise
        # xgboost.dask's workers train as one ring: it has no resilience, so a worker lost midway
        # (a nanny restarting it past its memory limit, measured at 6M rows on 2 workers of 1 GB)
        # ends the training.
        raise ClusterError(
            f"a Dask worker of {client.scheduler.address} died while XGBoost trained on it "
            f"({type(exc).__name__}), and xgboost.dask cannot continue without it; nothing was written. "
            "Each worker holds its share of the encoded training split: give the workers more memory "
            "(their logs say whether the limit was passed) or add workers, then run again"
        ) from None
    booster: xgboost.Booster = trained["booster"]
    estimator = objective.estimator(pipeline.named_steps["model"], booster)
    return Pipeline([("features", features), ("model", estimator)]), train_rows
