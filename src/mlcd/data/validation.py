"""Validate: check the raw dataset against its schema and profile it.

Every check runs (vectorised, one pass per column) and every problem found is
reported in one DataValidationError, so a team fixes its data in one round.
The profile (rows, missing cells, class balance) is written only for valid data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlcd.config import DataParams, ProjectPaths
from mlcd.console import stage
from mlcd.data.schema import DatasetSchema, FeatureSpec, load_schema
from mlcd.errors import DataValidationError, SourceError
from mlcd.files import sha256_file, write_json

_EXAMPLES = 3


def _rows(mask: np.ndarray) -> str:
    where = np.flatnonzero(mask)[:_EXAMPLES].tolist()
    more = ", ..." if mask.sum() > _EXAMPLES else ""
    return f"rows {', '.join(map(str, where))}{more}"


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _check_feature(spec: FeatureSpec, column: pd.Series) -> list[str]:
    name = spec.name
    missing = column.isna().to_numpy()
    if len(column) and missing.all():
        return [f"column {name!r} has no values: all {len(column):,} rows are missing"]
    problems = []
    if missing.any() and not spec.nullable:
        problems.append(
            f"column {name!r}: {int(missing.sum()):,} missing values ({_rows(missing)}); "
            "fill them at the source or set nullable: true in the schema"
        )
    if spec.dtype == "category":
        return problems
    if not _is_numeric(column):
        present = column[~missing]
        bad = present[pd.to_numeric(present, errors="coerce").isna()]
        example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
        found = "text" if pd.api.types.is_string_dtype(column) else str(column.dtype)
        return [*problems, f"column {name!r}: expected {spec.dtype}, got {found}{example}"]
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    if not np.isfinite(values[~missing]).all():
        problems.append(f"column {name!r}: infinite values ({_rows(np.isinf(values))})")
    if spec.dtype == "int" and not np.equal(np.mod(values[~missing], 1), 0).all():
        problems.append(f"column {name!r}: expected int, found fractional values")
    with np.errstate(invalid="ignore"):
        for bound, outside, word in (
            (spec.min, values < (spec.min if spec.min is not None else 0), "below min"),
            (spec.max, values > (spec.max if spec.max is not None else 0), "above max"),
        ):
            if bound is not None and outside.any():
                extreme = values[outside].min() if word == "below min" else values[outside].max()
                problems.append(
                    f"column {name!r}: {int(outside.sum()):,} values {word} {bound:g} "
                    f"(extreme {extreme:g}, {_rows(outside)})"
                )
    return problems


def _check_target(schema: DatasetSchema, column: pd.Series) -> list[str]:
    name = schema.target.name
    missing = column.isna().to_numpy()
    problems = []
    if missing.any():
        problems.append(f"target {name!r}: {int(missing.sum()):,} missing labels ({_rows(missing)})")
    present = column[~missing]
    if schema.target.classes is None:
        if not _is_numeric(column):
            problems.append(f"target {name!r}: regression needs a numeric target, got {column.dtype}")
        return problems
    allowed = schema.target.classes
    observed = sorted(present.astype(str).unique().tolist())
    unknown = [c for c in observed if c not in allowed]
    if unknown:
        problems.append(
            f"target {name!r}: unknown classes {', '.join(map(repr, unknown))}; "
            f"the schema allows {', '.join(map(repr, allowed))}"
        )
    known = [c for c in observed if c in allowed]
    if len(known) < 2:
        found = repr(known[0]) if known else "none"
        problems.append(
            f"target {name!r} has only one class ({found}); a classifier needs at least two of "
            f"{', '.join(map(repr, allowed))}"
        )
    else:
        absent = [c for c in allowed if c not in observed]
        if absent:
            problems.append(f"target {name!r}: classes {', '.join(map(repr, absent))} never occur")
    return problems


def profile(frame: pd.DataFrame, schema: DatasetSchema, duplicates: int) -> dict[str, Any]:
    target = frame[schema.target.name]
    summary: dict[str, Any] = {
        "rows": len(frame),
        "features": len(schema.features),
        "missing_cells": int(frame[schema.feature_names].isna().to_numpy().sum()),
        "duplicate_rows": duplicates,
    }
    if schema.target.classes is not None:
        shares = target.astype(str).value_counts(normalize=True)
        summary["class_balance"] = {c: round(float(shares.get(c, 0.0)), 6) for c in schema.target.classes}
    else:
        summary["target_mean"] = round(float(target.mean()), 6)
        summary["target_std"] = round(float(target.std()), 6)
    return summary


def validate_frame(frame: pd.DataFrame, schema: DatasetSchema, params: DataParams) -> dict[str, Any]:
    """Return the data profile, or raise DataValidationError listing every problem."""
    problems = []
    columns = set(frame.columns)
    for name in schema.columns:
        if name not in columns:
            problems.append(f"missing column {name!r} (required by the schema)")
    for name in frame.columns:
        if name not in schema.columns:
            problems.append(f"unexpected column {name!r}: add it to the schema or drop it at the source")
    if frame.empty:
        problems.append("the dataset has no rows")
    else:
        for spec in schema.features:
            if spec.name in columns:
                problems.extend(_check_feature(spec, frame[spec.name]))
        if schema.target.name in columns:
            problems.extend(_check_target(schema, frame[schema.target.name]))
    duplicates = 0
    if not problems:
        duplicates = int(pd.util.hash_pandas_object(frame, index=False).duplicated().sum())
        if duplicates / len(frame) > params.max_duplicate_fraction:
            problems.append(
                f"{duplicates:,} duplicate rows ({duplicates / len(frame):.2%}), more than "
                f"data.max_duplicate_fraction={params.max_duplicate_fraction}: deduplicate the "
                "source or raise the limit"
            )
    if problems:
        raise DataValidationError(
            f"the dataset breaks its schema ({len(problems)} problem{'s' * (len(problems) > 1)}):",
            problems,
        )
    return profile(frame, schema, duplicates)


def read_raw(paths: ProjectPaths, columns: list[str] | None = None) -> pd.DataFrame:
    if not paths.raw_data.is_file():
        raise SourceError(f"{paths.raw_data} not found: run `dvc repro ingest` (or `mlcd ingest`) first")
    # One block per column and Arrow buffers freed as they convert: about one copy of the data, not two.
    return pq.read_table(paths.raw_data, columns=columns).to_pandas(self_destruct=True, split_blocks=True)


def run_validate(params: DataParams, paths: ProjectPaths) -> dict[str, Any]:
    with stage("validate") as log:
        schema = load_schema(paths.schema(params))
        frame = read_raw(paths)
        summary = validate_frame(frame, schema, params)
        summary["sha256"] = sha256_file(paths.raw_data)
        write_json(paths.data_profile, summary)
        log.add(f"{len(frame):,} rows x {frame.shape[1]} columns pass {paths.schema(params)}")
        log.add(f"profile -> {paths.data_profile}")
        return summary
