"""Data beyond memory: preprocess's split, partition by partition (data.partition_rows).

The in-memory split shuffles the whole table with one generator, which needs every row at once.
Here a row goes to test when a seeded hash of its key falls below preprocess.test_size: its
position in the raw data, or with preprocess.group_by its group's value, so a group stays on one
side. Each row is judged alone, so any partition size gives the same rows on each side, in the
order of the raw data, and each class is split in the same ratio in expectation (binomially, not
to the row as the in-memory split does: README, "Data beyond memory"). Each side is written as a
directory of parts of data.partition_rows rows (data/tables.py).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcd.config import DataParams, PreprocessParams, ProjectPaths
from mlcd.console import progress, stage
from mlcd.data.schema import load_schema
from mlcd.data.split import MISSING_CATEGORY, existing_raw_data, preprocess_in_memory, tidy
from mlcd.data.tables import parquet_partitions, row_count, written_in_parts
from mlcd.errors import SourceError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(keys: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: well-spread 64-bit hashes of 64-bit keys, the same on every machine."""
    z = keys.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def uniform(keys: np.ndarray, seed: int) -> np.ndarray:
    """A number in [0, 1) per key, fixed by (key, seed)."""
    with np.errstate(over="ignore"):
        mixed = _mix(keys.astype(np.uint64) + _mix(np.array([seed], dtype=np.uint64)) * _GOLDEN)
    return (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def group_keys(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit key per group value (missing is a group of its own)."""
    import pandas as pd

    text = pc.fill_null(pc.cast(values, pa.string()), MISSING_CATEGORY)
    hashed: np.ndarray = pd.util.hash_array(np.asarray(text.to_numpy(zero_copy_only=False), dtype=object))
    return hashed


def in_test(start: int, table: pa.Table, params: PreprocessParams) -> np.ndarray:
    """Which of a partition's rows go to test; `start` is the first row's position in the raw data."""
    if params.group_by:
        keys = group_keys(table[params.group_by])
    else:
        keys = np.arange(start, start + table.num_rows, dtype=np.uint64)
    return uniform(keys, params.seed) < params.test_size


def run_preprocess(data: DataParams, params: PreprocessParams, paths: ProjectPaths) -> None:
    """The preprocess stage: the table whole (split.py), or data.partition_rows rows at a time."""
    if data.partition_rows:
        preprocess_partitions(data.partition_rows, data, params, paths)
    else:
        preprocess_in_memory(data, params, paths)


def preprocess_partitions(rows: int, data: DataParams, params: PreprocessParams, paths: ProjectPaths) -> None:
    with stage("preprocess") as log:
        schema = load_schema(paths.schema(data))
        total = row_count(existing_raw_data(paths))
        if not total:  # before any writer opens, so the outputs stay as they were
            raise SourceError(f"{paths.raw_data} holds no rows")
        with (
            written_in_parts(paths.train_data, rows) as train_parts,
            written_in_parts(paths.test_data, rows) as test_parts,
            progress() as bar,
        ):
            task = bar.add_task("split partitions", total=total)
            for start, raw in parquet_partitions(paths.raw_data, rows, schema.columns):
                # Judged before tidy drops rows without a target, so a row's key is its raw position.
                test = pa.array(in_test(start, raw, params))
                if raw[schema.target.name].null_count:
                    test = test.filter(pc.is_valid(raw[schema.target.name]))
                table = tidy(raw, schema)
                train_parts.write(table.filter(pc.invert(test)))
                test_parts.write(table.filter(test))
                bar.advance(task, raw.num_rows)
        counts = {"train": train_parts.rows, "test": test_parts.rows}
        by = f", whole groups of {params.group_by!r} on one side" if params.group_by else ""
        log.add(f"{sum(counts.values()):,} rows, {rows:,} at a time")
        log.add(
            f"-> train {counts['train']:,} ({paths.train_data}), test {counts['test']:,} ({paths.test_data})"
        )
        log.add(f"seed {params.seed}{by}")
