"""Validate: check the raw dataset against its schema and profile it.

Every check runs (vectorised, one pass per column) and every problem found is
reported in one DataValidationError, so a team fixes its data in one round.
The profile (rows, missing cells, class balance) is written only for valid data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlcd.config import FLOAT32_MAX, DataParams, PreprocessParams, ProjectPaths
from mlcd.data.advice import data_warnings
from mlcd.data.labels import series_labels
from mlcd.data.schema import MAX_CLASSES, DatasetSchema, FeatureSpec
from mlcd.data.split import existing_raw_data
from mlcd.data.tables import read_table
from mlcd.datetimes import to_timestamps
from mlcd.errors import DataValidationError

_EXAMPLES = 3


def rows_text(mask: np.ndarray, offset: int = 0) -> str:
    """The first few rows named as the file counts them: data rows from 1, the header not counted.

    `offset`: the rows before this partition (data.partition_rows).
    """
    where = (np.flatnonzero(mask)[:_EXAMPLES] + 1 + offset).tolist()
    more = ", ..." if mask.sum() > _EXAMPLES else ""
    return f"data rows {', '.join(map(str, where))}{more}"


def _some(values: list[Any], show: Callable[[Any], str] = repr, noun: str = "") -> str:
    """A list that stays one line however many values there are: the first few, then a count."""
    limit = _EXAMPLES * 2
    shown = ", ".join(map(show, values[:limit]))
    return shown + (f" and {len(values) - limit:,} more{noun}" if len(values) > limit else "")


def is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def check_feature(spec: FeatureSpec, column: pd.Series, offset: int = 0, whole: bool = True) -> list[str]:
    """A feature's problems; `whole`: the column is the whole table's, not one partition's, so
    a column without values is a problem (a partition may lack them where others have some)."""
    name = spec.name
    missing = column.isna().to_numpy()
    if whole and len(column) and missing.all():
        return [f"column {name!r} has no values: all {len(column):,} rows are missing"]
    problems = []
    if missing.any() and not spec.nullable:
        problems.append(
            f"column {name!r}: {int(missing.sum()):,} missing values ({rows_text(missing, offset)}); "
            "fill them at the source or set nullable: true in the schema"
        )
    if spec.dtype == "category" or missing.all():
        return problems
    if spec.dtype == "datetime":
        return problems + _check_dates(name, column[~missing])
    if not is_numeric(column):
        present = column[~missing]
        bad = present[pd.to_numeric(present, errors="coerce").isna()]
        example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
        found = "text" if pd.api.types.is_string_dtype(column) else str(column.dtype)
        return [*problems, f"column {name!r}: expected {spec.dtype}, got {found}{example}"]
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    if not np.isfinite(values[~missing]).all():
        problems.append(f"column {name!r}: infinite values ({rows_text(np.isinf(values), offset)})")
    with np.errstate(invalid="ignore"):
        huge = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    if huge.any():
        extreme = values[huge][np.abs(values[huge]).argmax()]
        problems.append(
            f"column {name!r}: {int(huge.sum()):,} values beyond float32's range (±{FLOAT32_MAX:.3g}), which "
            f"the model computes in (extreme {extreme:g}, {rows_text(huge, offset)}); "
            "rescale the column at the source (other units, or a log)"
        )
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
                    f"(extreme {extreme:g}, {rows_text(outside, offset)})"
                )
    return problems


def _check_dates(name: str, present: pd.Series) -> list[str]:
    """Every value must be a date or an ISO-8601 string, read as preprocess and the API read it."""
    import pyarrow as pa

    if pd.api.types.is_datetime64_any_dtype(present):
        return []
    if is_numeric(present):
        return [f"column {name!r}: expected ISO-8601 dates or timestamps, got numbers ({present.dtype})"]
    _, bad = to_timestamps(pa.array(present.astype(object).to_list()))
    if not bad:
        return []
    return [
        f"column {name!r}: {len(bad):,} values are not ISO-8601 dates or timestamps "
        f"(e.g. {present.iloc[bad[0]]!r}); write them as 2024-05-31 or 2024-05-31T13:45:00"
    ]


def _check_target(schema: DatasetSchema, column: pd.Series) -> list[str]:
    missing = column.isna().to_numpy()
    where = rows_text(missing) if missing.any() else ""
    if schema.target.classes is None:
        return target_problems(schema, int(missing.sum()), where, None, is_numeric(column), str(column.dtype))
    counts = series_labels(column).value_counts()
    return target_problems(schema, int(missing.sum()), where, counts, True, str(column.dtype))


def target_problems(
    schema: DatasetSchema, missing: int, where: str, counts: pd.Series | None, numeric: bool, dtype: str
) -> list[str]:
    """The target's problems, from its missing count (and where), its class counts (label_texts, for a
    classifier) or whether it is numeric: what the whole table or the sum of its partitions tells."""
    name = schema.target.name
    problems = []
    if missing and not schema.target.drop_missing:
        problems.append(
            f"target {name!r}: {missing:,} missing values ({where}); fill them at the "
            "source, or set target.drop_missing: true in the schema to train and test without those rows"
        )
    if schema.target.classes is None or counts is None:
        if not numeric:
            problems.append(f"target {name!r}: regression needs a numeric target, got {dtype}")
        return problems
    allowed = schema.target.classes
    observed = sorted(counts.index.tolist())
    unknown = [c for c in observed if c not in allowed]
    if unknown:
        problems.append(
            f"target {name!r}: unknown classes {_some(unknown)}; the schema allows {_some(allowed)}"
        )
    known = [c for c in observed if c in allowed]
    if len(known) < 2:
        found = repr(known[0]) if known else "none"
        problems.append(
            f"target {name!r} has only one class ({found}); "
            f"a classifier needs at least two of {_some(allowed)}"
        )
    else:
        absent = [c for c in allowed if c not in observed]
        if absent:
            problems.append(f"target {name!r}: classes {_some(absent)} never occur")
    return problems


def rows_needed(test_size: float, cv_folds: int) -> int:
    """The fewest rows of a class (or of a regression set) that leave one in test and enough to train.

    Preprocess puts round(n * test_size) of them in test; cross-validation needs a row per
    fold in training, a metric needs one at least.
    """
    least_in_train = max(1, cv_folds)
    n = 1
    while round(n * test_size) < 1 or n - round(n * test_size) < least_in_train:
        n += 1
    return n


def working_settings(smallest: int, test_size: float, cv_folds: int) -> str:
    """Settings that would split a class of `smallest` rows: fewer folds, another test_size, or both."""
    candidates = [t / 100 for t in range(5, 96)]

    def span(folds: int) -> str:
        sizes = [t for t in candidates if rows_needed(t, folds) <= smallest]
        return f"preprocess.test_size between {min(sizes):g} and {max(sizes):g}" if sizes else ""

    ways = []
    folds = [k for k in (0, *range(2, cv_folds)) if rows_needed(test_size, k) <= smallest]
    if folds:
        ways.append(f"train.cv_folds {max(folds)}" + (" (off)" if max(folds) == 0 else ""))
    if same_folds := span(cv_folds):
        ways.append(same_folds)
    if not ways and (without_cv := span(0)):
        ways.append(f"train.cv_folds 0 with {without_cv}")
    if not ways:
        return f"add rows: no setting splits a class of {smallest} row{'s' * (smallest > 1)}"
    return "add rows, or set " + ", or ".join(ways)


def split_problems(target: pd.Series, schema: DatasetSchema, test_size: float, cv_folds: int) -> list[str]:
    """Too few rows, overall or in a class, for preprocess's split and train's cross-validation."""
    present = target.dropna()
    counts = series_labels(present).value_counts() if schema.target.classes is not None else None
    numeric = pd.api.types.is_numeric_dtype(target)
    return count_split_problems(len(present), counts, numeric, schema, test_size, cv_folds)


def count_split_problems(
    present: int,
    counts: pd.Series | None,
    numeric: bool,
    schema: DatasetSchema,
    test_size: float,
    cv_folds: int,
) -> list[str]:
    """split_problems from the count of rows with a target and (classification) the rows per class."""
    needed = rows_needed(test_size, cv_folds)
    settings = f"preprocess.test_size {test_size:g} and train.cv_folds {cv_folds}"
    if schema.target.classes is None or counts is None:
        needed = max(needed, 4)  # R² needs two test rows, the regressor two to fit
        if present < needed:
            return [f"{present:,} rows with a target: {settings} need at least {needed}; add rows"]
        return []
    small = sorted(
        (int(n), label) for label, n in counts.items() if n < needed and label in schema.target.classes
    )
    if not small:
        return []
    listed = _some(small, lambda count: f"{count[1]!r} has {count[0]}", " classes")
    problem = (
        f"too few rows per class for the split: {listed}; {settings} need {needed} per class; "
        f"{working_settings(small[0][0], test_size, cv_folds)}"
    )
    if len(counts) > MAX_CLASSES and numeric:
        problem += (
            f"; {len(counts):,} numeric classes look like a quantity: "
            "`mlcd data use FILE --target COL --task regression` makes it a regression target"
        )
    return [problem]


def profile(frame: pd.DataFrame, schema: DatasetSchema, duplicates: int) -> dict[str, Any]:
    target = frame[schema.target.name]
    summary: dict[str, Any] = {
        "rows": len(frame),
        "features": len(schema.features),
        "missing_cells": int(frame[schema.feature_names].isna().to_numpy().sum()),
        "duplicate_rows": duplicates,
    }
    if schema.target.drop_missing:
        summary["dropped_missing_target"] = int(target.isna().sum())
        target = target.dropna()
    if schema.target.classes is not None:
        shares = series_labels(target).value_counts(normalize=True)
        summary["class_balance"] = {c: round(float(shares.get(c, 0.0)), 6) for c in schema.target.classes}
    else:
        summary["target_mean"] = round(float(target.mean()), 6)
        summary["target_std"] = round(float(target.std()), 6)
    return summary


def column_problems(names: list[str], schema: DatasetSchema) -> list[str]:
    problems = [
        f"missing column {name!r} (required by the schema)" for name in schema.columns if name not in names
    ]
    problems += [
        f"unexpected column {name!r}: add it to the schema or drop it at the source"
        for name in names
        if name not in schema.columns
    ]
    return problems


def raise_problems(
    problems: list[str],
    names: list[str],
    schema: DatasetSchema,
    split: PreprocessParams | None,
    schema_name: str,
) -> None:
    """One DataValidationError for every problem found, if any (`names`: the data's columns)."""
    absent = [name for name in schema.columns if name not in names]
    if len(absent) >= max(2, len(schema.columns) / 2):
        # Not bad data but the wrong schema (e.g. data.source changed, data.schema not): say that first.
        raise DataValidationError(
            f"the data and {schema_name} plainly disagree: {len(absent)} of the schema's "
            f"{len(schema.columns)} columns are not in the data. Point data.schema at this data's schema "
            "(`mlcd data use FILE --target COL` or `mlcd schema infer` writes one); the problems found:",
            problems,
        )
    if split is not None and split.group_by is not None and split.group_by not in schema.columns:
        problems = [
            *problems,
            f"preprocess.group_by {split.group_by!r} is not a column of {schema_name}; "
            f"name one of {_some(schema.columns)}, or set it to null",
        ]
    if problems:
        raise DataValidationError(
            f"the dataset breaks its schema ({len(problems)} problem{'s' * (len(problems) > 1)}):",
            problems,
        )


def duplicate_problem(duplicates: int, rows: int, params: DataParams) -> list[str]:
    if not rows or duplicates / rows <= params.max_duplicate_fraction:
        return []
    return [
        f"{duplicates:,} duplicate rows ({duplicates / rows:.2%}), more than "
        f"data.max_duplicate_fraction={params.max_duplicate_fraction}: deduplicate the "
        "source or raise the limit"
    ]


def blocking_warnings(found: list[str], kinds: list[str], params: DataParams) -> list[str]:
    """The warnings' messages, or a DataValidationError for those of a kind data.fail_on names."""
    blocking = [message for message, kind in zip(found, kinds, strict=True) if kind in params.fail_on]
    if blocking:
        raise DataValidationError(
            f"{len(blocking)} warning{'s' * (len(blocking) > 1)} of a kind data.fail_on makes an error:",
            blocking,
        )
    return found


def validate_frame(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    params: DataParams,
    split: PreprocessParams | None = None,
    cv_folds: int = 0,
    schema_name: str = "the schema",
) -> dict[str, Any]:
    """Return the data profile, or raise DataValidationError listing every problem.

    With `split` (and train's `cv_folds`), also whether preprocess and train will have rows enough.
    """
    columns = set(frame.columns)
    problems = column_problems(list(frame.columns), schema)
    if frame.empty:
        problems.append("the dataset has no rows")
    else:
        for spec in schema.features:
            if spec.name in columns:
                problems.extend(check_feature(spec, frame[spec.name]))
        if schema.target.name in columns:
            problems.extend(_check_target(schema, frame[schema.target.name]))
            if split is not None:
                # Counted on the rows with a known target, so missing or stray labels hide nothing.
                problems.extend(split_problems(frame[schema.target.name], schema, split.test_size, cv_folds))
    duplicates = 0
    if not frame.empty:
        # Checked with the rest, so a team fixes its data (or its limits) in one round.
        duplicates = int(pd.util.hash_pandas_object(frame, index=False).duplicated().sum())
        problems.extend(duplicate_problem(duplicates, len(frame), params))
    raise_problems(problems, list(frame.columns), schema, split, schema_name)
    summary = profile(frame, schema, duplicates)
    if split is not None:
        found = data_warnings(frame, schema, split)
        summary["warnings"] = blocking_warnings([w.message for w in found], [w.kind for w in found], params)
    return summary


def read_raw(paths: ProjectPaths, columns: list[str] | None = None) -> pd.DataFrame:
    # One block per column and Arrow buffers freed as they convert: about one copy of the data, not two.
    return read_table(existing_raw_data(paths), columns=columns).to_pandas(
        self_destruct=True, split_blocks=True
    )
