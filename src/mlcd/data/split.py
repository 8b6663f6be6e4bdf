"""Preprocess: a seeded, stratified train/test split of the validated data.

Done on Arrow tables, not DataFrames: the raw data is read once (only the
schema's columns), rows are taken by index, and no pandas or scikit-learn is
loaded, which keeps memory near one copy of the data and start-up short.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcd.config import DataParams, PreprocessParams, ProjectPaths
from mlcd.console import stage
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.datetimes import PARTS, arrow_parts, part_name, to_timestamps
from mlcd.errors import SourceError
from mlcd.files import write_with

MISSING_CATEGORY = "__missing__"


def tidy(table: pa.Table, schema: DatasetSchema) -> pa.Table:
    """Schema columns only, rows with a target, labels as text, missing categories as their own level,
    and each datetime feature's parts beside it.

    Validation has let a missing target through only where the schema says target.drop_missing.
    """
    table = table.select(schema.columns)
    if table[schema.target.name].null_count:
        table = table.filter(pc.is_valid(table[schema.target.name]))
    for name in schema.datetimes:
        # The original column stays (package's examples show it as sent); the model reads the parts.
        timestamps, _ = to_timestamps(table[name])  # validate has refused unreadable values
        for part, values in zip(PARTS, arrow_parts(timestamps), strict=True):
            table = table.append_column(part_name(name, part), values)
    for name in schema.categorical:
        column = pc.fill_null(pc.cast(table[name], pa.string()), MISSING_CATEGORY)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    if schema.task == "classification":
        target = schema.target.name
        table = table.set_column(
            table.schema.get_field_index(target), target, pc.cast(table[target], pa.string())
        )
    return table


def split_indices(
    codes: np.ndarray | None, rows: int, params: PreprocessParams
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test row indices; with class codes, each class is split in the same ratio."""
    rng = np.random.default_rng(params.seed)
    if codes is None:
        groups = [np.arange(rows)]
    else:
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.cumsum(np.bincount(codes))[:-1])
    train, test = [], []
    for group in groups:
        shuffled = rng.permutation(group)
        cut = round(len(group) * params.test_size)
        test.append(shuffled[:cut])
        train.append(shuffled[cut:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def run_preprocess(data: DataParams, params: PreprocessParams, paths: ProjectPaths) -> None:
    with stage("preprocess") as log:
        schema = load_schema(paths.schema(data))
        if not paths.raw_data.is_file():
            raise SourceError(f"{paths.raw_data} not found: run `dvc repro ingest` (or `mlcd ingest`) first")
        table = tidy(pq.read_table(paths.raw_data, columns=schema.columns), schema)
        codes = None
        if schema.task == "classification":
            # Integer codes per class, not one Python string per row.
            codes = table[schema.target.name].combine_chunks().dictionary_encode().indices.to_numpy()
        train, test = split_indices(codes, table.num_rows, params)
        for indices, target in ((train, paths.train_data), (test, paths.test_data)):
            part = table.take(indices)
            write_with(target, functools.partial(pq.write_table, part))
        log.add(f"{table.num_rows:,} rows -> train {len(train):,} ({paths.train_data})")
        log.add(f"test {len(test):,} ({paths.test_data}), seed {params.seed}")
