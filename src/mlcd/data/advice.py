"""Warnings a careful data scientist would give about a table, before anyone trusts its scores.

None of these is an error: a column unique on every row may be a real measurement, a leak may be
a feature the team does have at prediction time. So they are warnings (printed by `data use` and
validate, kept in metrics/data.json, shown in the MR report), each naming the column and the fix,
and a team makes a kind blocking by listing it in data.fail_on. The thresholds are the README's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcd.config import WarningKind
from mlcd.data.labels import label_texts
from mlcd.data.split import split_rows

if TYPE_CHECKING:
    import pandas as pd

    from mlcd.config import PreprocessParams
    from mlcd.data.schema import DatasetSchema

ID_SHARE = 0.9  # a column named like an ID with distinct values on this share of rows is one
CONSTANT_SHARE = 0.99  # one value on this share of rows carries almost nothing
LEAK_SCORE = 0.98  # one feature alone explains this much of the target (see single_feature_score)
RARE_CLASS_SHARE = 0.05  # a class below this share of rows
_MIN_ROWS = 20  # fewer rows say nothing either way
_SAMPLE = 50_000  # training rows the leak check reads at most
_BINS = 50


@dataclass(frozen=True)
class DataWarning:
    kind: WarningKind
    column: str | None  # None: about the split, not a column
    message: str


def _looks_named_like_an_id(name: str) -> bool:
    words = re.split(r"[^a-z0-9]+", name.lower())
    return "id" in words or name.lower().endswith("id") or name.lower() in ("index", "unnamed: 0")


def _id_columns(frame: pd.DataFrame, schema: DatasetSchema) -> list[DataWarning]:
    """Whole numbers or text unique on every row, or on ID_SHARE of rows under a name like an ID."""
    import pandas as pd

    found = []
    for spec in schema.features:
        column = frame[spec.name]
        present = column.dropna()
        if spec.dtype == "datetime" or len(present) < _MIN_ROWS:
            continue
        if pd.api.types.is_float_dtype(present) and not bool((present % 1 == 0).all()):
            continue  # a measurement: continuous values are unique by nature
        distinct = present.nunique()
        every_row = distinct == len(column)
        if every_row or (_looks_named_like_an_id(spec.name) and distinct >= ID_SHARE * len(column)):
            found.append(
                DataWarning(
                    "id_column",
                    spec.name,
                    f"column {spec.name!r} is unique on {distinct:,} of {len(column):,} rows, like an ID: "
                    "the model learns nothing from it that holds for new rows; "
                    "drop it from the file and the schema",
                )
            )
    return found


def _near_constant(frame: pd.DataFrame, schema: DatasetSchema, seed: int) -> list[DataWarning]:
    """Judged on at most _SAMPLE rows: a share near 99 % needs no more, and value counts of every
    column of ten million rows would cost minutes."""
    if len(frame) < _MIN_ROWS:
        return []
    if len(frame) > _SAMPLE:
        frame = frame.sample(_SAMPLE, random_state=seed)
    found = []
    for name in schema.feature_names:
        counts = frame[name].value_counts(dropna=False)
        share = counts.iloc[0] / len(frame)
        if share >= CONSTANT_SHARE:
            what = "the same value" if len(counts) == 1 else f"one value ({counts.index[0]!r})"
            found.append(
                DataWarning(
                    "near_constant",
                    name,
                    f"column {name!r} is {what} on {share:.1%} of rows: it tells the model almost nothing; "
                    "drop it, unless the rare rows are the point",
                )
            )
    return found


def _groups(values: pd.Series, bins: int) -> np.ndarray | None:
    """Integer groups of a feature: its levels (text, few values) or quantile bins (numbers)."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > bins:
        codes = pd.qcut(values.astype("float64"), bins, labels=False, duplicates="drop")
        return np.asarray(codes.fillna(-1), dtype=np.int64)
    if values.nunique(dropna=False) > bins:
        return None  # a text column with many levels explains anything by memorising: the ID check's job
    return np.asarray(pd.factorize(values, use_na_sentinel=False)[0], dtype=np.int64)


def single_feature_score(groups: np.ndarray, target: np.ndarray, classification: bool) -> float:
    """How much of the target one feature's groups explain, 0 (nothing) to 1 (all).

    Classification: accuracy of predicting each group's majority class, rescaled so that always
    answering the overall majority scores 0. Regression: the share of the target's variance between
    groups (the correlation ratio, η²). Either catches a leak of any shape, not only a straight line.
    """
    if classification:
        codes = np.unique(target, return_inverse=True)[1]
        table = np.zeros((groups.max() + 1, codes.max() + 1))
        np.add.at(table, (groups, codes), 1)
        baseline = table.sum(axis=0).max() / len(target)
        purity = table.max(axis=1).sum() / len(target)
        return 0.0 if baseline >= 1 else float((purity - baseline) / (1 - baseline))
    total = float(np.var(target))
    if total == 0:
        return 0.0
    sums, counts = np.bincount(groups, weights=target), np.bincount(groups)
    means = sums[groups] / counts[groups]
    return float(1 - np.mean((target - means) ** 2) / total)


def _leaks(train: pd.DataFrame, schema: DatasetSchema) -> list[DataWarning]:
    if len(train) < _MIN_ROWS:
        return []
    classification = schema.task == "classification"
    target = train[schema.target.name]
    # Classes as integer codes, once: single_feature_score then sorts numbers, not strings.
    y = (
        np.asarray(label_texts(pa.array(target, from_pandas=True)).dictionary_encode().indices)
        if classification
        else target.to_numpy(float)
    )
    bins = max(2, min(_BINS, len(train) // _MIN_ROWS))
    found = []
    for spec in schema.features:
        groups = _groups(train[spec.name], bins)
        if groups is None or groups.max() < 1:
            continue
        score = single_feature_score(groups - groups.min(), y, classification)
        if score >= LEAK_SCORE:
            found.append(
                DataWarning(
                    "leak",
                    spec.name,
                    f"column {spec.name!r} alone explains {score:.1%} of the target in training: "
                    "likely a leak (known only after the outcome, or derived from it); drop it unless "
                    "the model will have it, as it is, when it predicts",
                )
            )
    return found


def _imbalance(labels: pa.Array | None, schema: DatasetSchema) -> list[DataWarning]:
    """`labels`: the class texts of the rows with a target (None for regression)."""
    if labels is None or not len(labels):
        return []
    tally = pc.value_counts(labels)
    names, counts = tally.field("values").to_pylist(), tally.field("counts").to_numpy()
    rare = int(counts.argmin())
    share = counts[rare] / counts.sum()
    if share >= RARE_CLASS_SHARE:
        return []
    return [
        DataWarning(
            "imbalance",
            schema.target.name,
            f"class {names[rare]!r} is {share:.1%} of rows ({counts[rare]:,} of {counts.sum():,}): "
            "accuracy hides a model that never predicts it; gate on balanced_accuracy or f1, "
            "and consider train.class_weight: balanced",
        )
    ]


def _overlap(
    kept: pd.DataFrame, schema: DatasetSchema, train: np.ndarray, test: np.ndarray
) -> list[DataWarning]:
    import pandas as pd

    hashes = pd.util.hash_pandas_object(kept[schema.feature_names], index=False).to_numpy()
    shared = int(np.isin(hashes[test], hashes[train]).sum())
    if not shared:
        return []
    return [
        DataWarning(
            "split_overlap",
            None,
            f"{shared:,} of {len(test):,} test rows have the same features as a training row: the test score "
            "flatters the model on rows it has seen; deduplicate the source, or set preprocess.group_by to a "
            "column naming what a row is about (a patient, a customer) to keep each group on one side",
        )
    ]


def data_warnings(frame: pd.DataFrame, schema: DatasetSchema, split: PreprocessParams) -> list[DataWarning]:
    """Every warning about a table that has passed validation, on the split preprocess will make."""
    kept = frame[frame[schema.target.name].notna()].reset_index(drop=True)
    labels = None
    if schema.task == "classification":  # the class texts, once: the split and the imbalance count read them
        labels = label_texts(pa.array(kept[schema.target.name], from_pandas=True))
    groups = pa.array(kept[split.group_by], from_pandas=True) if split.group_by else None
    train, test = split_rows(labels, groups, len(kept), split)
    sample = train
    if len(sample) > _SAMPLE:
        sample = np.sort(np.random.default_rng(split.seed).choice(train, _SAMPLE, replace=False))
    return [
        *_id_columns(frame, schema),
        *_near_constant(frame, schema, split.seed),
        *_leaks(kept.iloc[sample], schema),
        *_imbalance(labels, schema),
        *_overlap(kept, schema, train, test),
    ]
