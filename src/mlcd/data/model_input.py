"""A processed split as model input, for train, evaluate and package (their DVC deps name this file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mlcd.data.schema import DatasetSchema
from mlcd.data.tables import parquet_partitions, read_table


def read_split(path: Path, schema: DatasetSchema, float32: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a split (pyarrow loads pandas here).

    Numeric features come as float32 by default: the ONNX model computes in float32 anyway, scikit-learn's
    trees cast to float32 themselves, and it halves the memory of train and evaluate (a float32 logistic
    regression fits to within 1e-6 of the float64 one). Package reads float64 to record exact ranges.
    """
    table = read_table(path, columns=[*schema.feature_names, schema.target.name])
    return split_frame(table, schema, float32)


def read_column(path: Path, name: str) -> pa.ChunkedArray:
    """One column of a split, for work done a column at a time. What earlier reads freed goes back
    to the OS first: Arrow's allocator keeps freed pages for reuse, so 30 columns of 8M rows read in
    turn peaked at 816 MB, and 554 MB when released between them."""
    pa.default_memory_pool().release_unused()
    return read_table(path, columns=[name])[name]


def split_partitions(
    path: Path, schema: DatasetSchema, rows: int
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    """read_split `rows` rows at a time (data.partition_rows): one partition in memory."""
    columns = [*schema.feature_names, schema.target.name]
    for _, table in parquet_partitions(path, rows, columns):
        # Not self-destructing: the reader still holds the table until it reads the next one.
        yield split_frame(table, schema, float32=True, only_copy=False)


def split_frame(
    table: pa.Table, schema: DatasetSchema, float32: bool, only_copy: bool = True
) -> tuple[pd.DataFrame, pd.Series]:
    """`only_copy`: nothing else holds the table's buffers, so they are freed as they convert."""
    if float32:
        numeric = set(schema.numeric)
        table = table.cast(
            pa.schema(
                [field.with_type(pa.float32()) if field.name in numeric else field for field in table.schema]
            )
        )
    # One consolidated block: scikit-learn then takes the features without another copy.
    frame = table.to_pandas(self_destruct=only_copy)
    del table
    return frame[schema.feature_names], frame[schema.target.name]
