"""Validate, partition by partition (data.partition_rows): memory bounded by a partition, not the table.

Every check of validation.py runs on each partition; what needs the whole table is merged from
per-partition results: the class counts (so a class seen in one partition only is seen), the
target's mean and spread, missing cells, and duplicate rows, counted from row hashes spilled to
disk by their top bits so that one bucket at a time is in memory. The warnings (advice.py) are
judged on a seeded sample of about SAMPLE_ROWS rows drawn from every partition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from mlcd.config import DataParams, Params, PreprocessParams, ProjectPaths
from mlcd.console import stage, warn
from mlcd.data.advice import data_warnings
from mlcd.data.labels import series_labels
from mlcd.data.partitions import uniform
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.data.split import existing_raw_data
from mlcd.data.tables import parquet_partitions, row_count, table_digest, table_schema
from mlcd.data.validation import (
    blocking_warnings,
    check_feature,
    column_problems,
    count_split_problems,
    duplicate_problem,
    is_numeric,
    raise_problems,
    read_raw,
    rows_text,
    target_problems,
    validate_frame,
)
from mlcd.files import write_json

SAMPLE_ROWS = 100_000
_BUCKET_BITS = 6  # 64 spill files: a bucket holds 1/64 of the row hashes


class DuplicateCounter:
    """Duplicate rows among every partition's row hashes (pandas' hash_pandas_object), with one
    bucket in memory at a time: equal rows have equal hashes, so they land in the same bucket."""

    def __init__(self, folder: Path) -> None:
        self._files: list[BinaryIO] = [(folder / f"{b:02d}").open("wb") for b in range(1 << _BUCKET_BITS)]

    def add(self, hashes: np.ndarray) -> None:
        buckets = (hashes >> np.uint64(64 - _BUCKET_BITS)).astype(np.intp)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange(1, 1 << _BUCKET_BITS))
        for handle, part in zip(self._files, np.split(hashes[order], bounds), strict=True):
            handle.write(part.tobytes())

    def count(self) -> int:
        duplicates = 0
        for handle in self._files:
            handle.close()
            values = np.fromfile(handle.name, dtype=np.uint64)
            # Sorted, a duplicate is equal to its neighbour. Not np.unique: numpy 2.3+ counts integers
            # in a hash table, which past the CPU's caches took 535 ms for a bucket of 781,000 hashes
            # (50M rows) against 39 for a sort, and made validate's time per row grow with the rows.
            values.sort()
            duplicates += int(np.count_nonzero(values[1:] == values[:-1]))
        return duplicates


class _Spread:
    """Count, mean and squared deviations, merged partition by partition (Chan et al.)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        n = len(values)
        if not n:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        delta, total = mean - self.mean, self.n + n
        self.m2 += m2 + delta**2 * self.n * n / total
        self.mean += delta * n / total
        self.n = total

    def std(self) -> float:
        return float(np.sqrt(self.m2 / (self.n - 1))) if self.n > 1 else float("nan")


class _FirstPerColumn:
    """A column's problems as its first partition with problems tells them (bounded however many)."""

    def __init__(self) -> None:
        self.first: dict[str, list[str]] = {}
        self.more: dict[str, int] = {}

    def add(self, column: str, problems: list[str]) -> None:
        if not problems:
            return
        if column in self.first:
            self.more[column] = self.more.get(column, 0) + 1
        else:
            self.first[column] = problems

    def messages(self) -> list[str]:
        found: list[str] = []
        for column, problems in self.first.items():
            extra = self.more.get(column, 0)
            note = (
                f" (in the first partition with problems; {extra:,} more partitions have some)"
                if extra
                else ""
            )
            found.extend(problem + note for problem in problems)
        return found


def validate_partitions(
    raw: Path,
    schema: DatasetSchema,
    params: DataParams,
    split: PreprocessParams,
    cv_folds: int,
    schema_name: str,
) -> dict[str, Any]:
    """validate_frame's profile of a Parquet file read `data.partition_rows` rows at a time."""
    assert params.partition_rows is not None
    names, rows = table_schema(raw).names, row_count(raw)
    problems = column_problems(names, schema)
    target_name = schema.target.name
    present_features = [spec for spec in schema.features if spec.name in names]
    per_column = _FirstPerColumn()
    counts = pd.Series(dtype="int64")
    spread, missing_target, missing_where, numeric, dtype = _Spread(), 0, "", True, ""
    missing_per_column = pd.Series(dtype="int64")
    samples: list[pd.DataFrame] = []
    with tempfile.TemporaryDirectory(prefix="mlcd-duplicates-") as spill:
        duplicates = DuplicateCounter(Path(spill))
        for start, table in parquet_partitions(raw, params.partition_rows):
            # A block per column: no copy into one 2-D block (pyarrow's self_destruct, which would
            # also free Arrow's copy as it converts, crashed the process here: not used).
            frame = table.to_pandas(split_blocks=True)
            del table
            for spec in present_features:
                per_column.add(spec.name, check_feature(spec, frame[spec.name], start, whole=False))
            gaps = frame[[s.name for s in present_features]].isna().sum()
            missing_per_column = missing_per_column.add(gaps, fill_value=0)
            if target_name in frame:
                column = frame[target_name]
                missing = column.isna().to_numpy()
                if missing.any() and not missing_where:
                    missing_where = rows_text(missing, start)
                missing_target += int(missing.sum())
                numeric, dtype = numeric and is_numeric(column), str(column.dtype)
                if schema.target.classes is not None:
                    counts = counts.add(series_labels(column).value_counts(), fill_value=0)
                elif numeric:
                    spread.add(column.to_numpy(dtype="float64", na_value=np.nan)[~missing])
            duplicates.add(pd.util.hash_pandas_object(frame, index=False).to_numpy())
            keep = (
                uniform(np.arange(start, start + len(frame), dtype=np.uint64), split.seed)
                < SAMPLE_ROWS / rows
            )
            samples.append(frame[keep])
            del frame  # before the next partition is read
        duplicate_rows = duplicates.count()
    empty = [name for name, gaps in missing_per_column.items() if rows and gaps == rows]
    problems += [f"column {name!r} has no values: all {rows:,} rows are missing" for name in empty]
    problems += per_column.messages()
    if not rows:
        problems.append("the dataset has no rows")
    elif target_name in names:
        classes = counts.astype("int64") if schema.target.classes is not None else None
        problems += target_problems(schema, missing_target, missing_where, classes, numeric, dtype)
        present = rows - missing_target
        problems += count_split_problems(present, classes, numeric, schema, split.test_size, cv_folds)
    problems += duplicate_problem(duplicate_rows, rows, params)
    raise_problems(problems, names, schema, split, schema_name)
    summary: dict[str, Any] = {
        "rows": rows,
        "features": len(schema.features),
        "missing_cells": int(missing_per_column.sum()),
        "duplicate_rows": duplicate_rows,
    }
    if schema.target.drop_missing:
        summary["dropped_missing_target"] = missing_target
    if schema.target.classes is not None:
        shares = counts / counts.sum()
        summary["class_balance"] = {c: round(float(shares.get(c, 0.0)), 6) for c in schema.target.classes}
    else:
        summary["target_mean"] = round(spread.mean, 6)
        summary["target_std"] = round(spread.std(), 6)
    sample = pd.concat(samples, ignore_index=True)
    found = data_warnings(sample, schema, split)
    summary["warnings"] = blocking_warnings([w.message for w in found], [w.kind for w in found], params)
    summary["partition_rows"] = params.partition_rows
    summary["warnings_sample_rows"] = len(sample)
    return summary


def run_validate(params: Params, paths: ProjectPaths) -> dict[str, Any]:
    """The validate stage: the table whole, or data.partition_rows rows at a time."""
    with stage("validate") as log:
        schema = load_schema(paths.schema(params.data))
        schema_name = f"data.schema ({params.data.schema_path})"
        split, folds = params.preprocess, params.train.cv_folds
        if params.data.partition_rows:
            summary = validate_partitions(
                existing_raw_data(paths), schema, params.data, split, folds, schema_name
            )
            shape = f"{summary['rows']:,} rows, {params.data.partition_rows:,} at a time,"
        else:
            frame = read_raw(paths)
            summary = validate_frame(frame, schema, params.data, split, folds, schema_name)
            shape = f"{len(frame):,} rows x {frame.shape[1]} columns"
        summary["sha256"] = table_digest(paths.raw_data)
        for message in summary.get("warnings", []):
            warn(message)
        write_json(paths.data_profile, summary)
        log.add(f"{shape} pass {paths.schema(params.data)}")
        log.add(f"profile -> {paths.data_profile}")
        return summary
