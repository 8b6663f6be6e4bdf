"""Preprocess: a seeded, stratified train/test split of the validated data.

Done on Arrow tables, not DataFrames: the raw data is read once (only the
schema's columns), rows are taken by index, and no pandas or scikit-learn is
loaded, which keeps memory near one copy of the data and start-up short.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcd.config import DataParams, PreprocessParams, ProjectPaths
from mlcd.console import stage
from mlcd.data.labels import label_texts
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.data.tables import read_table, table_exists
from mlcd.datetimes import arrow_parts, part_name, to_timestamps
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
    for spec in schema.features:
        if spec.dtype != "datetime":
            continue
        # The original column stays (package's examples show it as sent); the model reads the parts.
        # A date-only feature is read as written (datetimes: no UTC shift of a calendar date).
        local = "hour" not in spec.parts
        timestamps, _ = to_timestamps(table[spec.name], local)  # validate has refused unreadable values
        for part, values in zip(spec.parts, arrow_parts(timestamps, spec.parts), strict=True):
            table = table.append_column(part_name(spec.name, part), values)
    for name in schema.categorical:
        column = pc.fill_null(pc.cast(table[name], pa.string()), MISSING_CATEGORY)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    if schema.task == "classification":
        target = schema.target.name
        table = table.set_column(table.schema.get_field_index(target), target, label_texts(table[target]))
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


def group_split_indices(groups: np.ndarray, params: PreprocessParams) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups to one side: shuffled groups go to test until it holds round(rows * test_size) rows.

    Not stratified (a group has several labels); validate's split check counts rows per class as usual.
    """
    rng = np.random.default_rng(params.seed)
    sizes = np.bincount(groups)
    order = rng.permutation(len(sizes))
    wanted = round(len(groups) * params.test_size)
    taken = int(np.searchsorted(np.cumsum(sizes[order]), wanted)) + 1
    in_test = np.isin(groups, order[: min(taken, len(order) - 1)])  # at least one group trains
    return rng.permutation(np.flatnonzero(~in_test)), rng.permutation(np.flatnonzero(in_test))


def codes_of(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Integer codes per distinct value in order of appearance (missing is a value of its own)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    text = pc.fill_null(pc.cast(array, pa.string()), MISSING_CATEGORY)
    codes: np.ndarray = text.dictionary_encode().indices.to_numpy()
    return codes


def split_rows(
    labels: pa.Array | pa.ChunkedArray | None,
    groups: pa.Array | pa.ChunkedArray | None,
    rows: int,
    params: PreprocessParams,
) -> tuple[np.ndarray, np.ndarray]:
    """The split preprocess writes (validate asks the same to judge it): by group if
    preprocess.group_by names one, else stratified by the class labels (label_texts), else shuffled.
    """
    if groups is not None:
        return group_split_indices(codes_of(groups), params)
    return split_indices(None if labels is None else codes_of(labels), rows, params)


def existing_raw_data(paths: ProjectPaths) -> Path:
    """The raw dataset ingest writes, or the error saying to run ingest."""
    if not table_exists(paths.raw_data):
        raise SourceError(f"{paths.raw_data} not found: run `dvc repro ingest` (or `mlcd ingest`) first")
    return paths.raw_data


def preprocess_in_memory(data: DataParams, params: PreprocessParams, paths: ProjectPaths) -> None:
    with stage("preprocess") as log:
        schema = load_schema(paths.schema(data))
        table = tidy(read_table(existing_raw_data(paths), columns=schema.columns), schema)
        labels = table[schema.target.name] if schema.task == "classification" else None
        groups = table[params.group_by] if params.group_by else None
        train, test = split_rows(labels, groups, table.num_rows, params)
        for indices, target in ((train, paths.train_data), (test, paths.test_data)):
            part = table.take(indices)
            write_with(target, functools.partial(pq.write_table, part))
        by = f", whole groups of {params.group_by!r} on one side" if params.group_by else ""
        log.add(f"{table.num_rows:,} rows -> train {len(train):,} ({paths.train_data})")
        log.add(f"test {len(test):,} ({paths.test_data}), seed {params.seed}{by}")
