"""train.estimator: xgboost beyond memory (data.partition_rows): the training split streamed through
XGBoost's external-memory iterator, so memory holds one partition and XGBoost's compressed histogram
pages, not the feature matrix.

Two passes over the split. The first gathers what the whole split decides: each text feature's levels
(the one-hot encoder's columns, sorted as fitting on every row would sort them), the classes and their
counts (the labels' codes and class_weight's weights). The second is XGBoost's own: it reads the
partitions through `_Partitions` once to sketch the quantiles, then trains on its cached pages.

The model is equivalent to the in-memory fit, not identical: XGBoost merges the quantile sketches of
the partitions, so a split threshold can move by a bin (README "Data beyond memory").
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from mlcd.config import TrainParams
from mlcd.data.model_input import split_partitions
from mlcd.data.schema import DatasetSchema
from mlcd.errors import ConfigError
from mlcd.modeling.xgboost_models import FIXED, LabelledXGBClassifier, xgboost_options


class SplitSummary:
    """What the first pass learns from every partition of the split."""

    def __init__(self, categorical: list[str]) -> None:
        self.levels: dict[str, set[str]] = {name: set() for name in categorical}
        self.class_counts: dict[Any, int] = {}
        self.first: pd.DataFrame | None = None
        self.rows = 0

    def add(self, x: pd.DataFrame, y: pd.Series) -> None:
        for name, seen in self.levels.items():
            seen.update(x[name].dropna().unique().tolist())
        for label, count in y.value_counts(sort=False).items():
            self.class_counts[label] = self.class_counts.get(label, 0) + int(count)
        if self.first is None:
            self.first = x
        self.rows += len(x)


def summarize(train: Path, schema: DatasetSchema, rows: int) -> SplitSummary:
    summary = SplitSummary(schema.categorical)
    for x, y in split_partitions(train, schema, rows):
        summary.add(x, y)
    if summary.first is None:
        raise ConfigError(f"{train} has no rows to train on; re-run preprocess")
    return summary


def fit_features(features: Any, summary: SplitSummary) -> Any:
    """The preprocessor as fitting on every row would leave it: for trees it only passes numbers
    through and one-hot encodes, so the levels seen anywhere are all it needs to learn."""
    if summary.levels:
        features.set_params(categorical__categories=[sorted(v) for v in summary.levels.values()])
    assert summary.first is not None
    return features.fit(summary.first)


class _Partitions:
    """The split as XGBoost's DataIter asks for it: features encoded, labels coded, weights given."""

    def __init__(
        self,
        train: Path,
        schema: DatasetSchema,
        rows: int,
        features: Any,
        targets: Callable[[pd.Series], tuple[np.ndarray, np.ndarray | None]],
    ) -> None:
        self.train, self.schema, self.rows = train, schema, rows
        self.features, self.targets = features, targets
        self._batches: Iterator[tuple[pd.DataFrame, pd.Series]] | None = None

    def reset(self) -> None:
        self._batches = None

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        if self._batches is None:
            self._batches = split_partitions(self.train, self.schema, self.rows)
        batch = next(self._batches, None)
        if batch is None:
            return None
        x, y = batch
        labels, weights = self.targets(y)
        return np.ascontiguousarray(self.features.transform(x), dtype=np.float32), labels, weights


class Batches(Protocol):
    """What XGBoost's external-memory iterator reads: the next encoded batch, or None at the end."""

    def reset(self) -> None: ...

    def next_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None: ...


def external_memory_matrix(batches: Batches, cache: str, bins: int) -> Any:
    """XGBoost's quantised matrix built from `batches` one at a time, its pages kept under `cache`."""
    import xgboost

    class Iterator(xgboost.DataIter):
        def __init__(self) -> None:
            super().__init__(cache_prefix=cache)

        def next(self, input_data: Callable[..., None]) -> bool:
            batch = batches.next_batch()
            if batch is None:
                return False
            x, labels, weights = batch
            input_data(data=x, label=labels, weight=weights)
            return True

        def reset(self) -> None:
            batches.reset()

    return xgboost.ExtMemQuantileDMatrix(Iterator(), max_bin=bins, missing=np.nan)


class Objective:
    """What the booster is asked to learn, decided from the whole split's summary."""

    def __init__(self, params: TrainParams, summary: SplitSummary) -> None:
        import xgboost

        self.options = {**xgboost_options(params), **FIXED}
        self.booster_params: dict[str, Any] = xgboost.XGBRegressor(**self.options).get_xgb_params()
        self.classes: np.ndarray | None = None
        self._balanced: np.ndarray | None = None
        if params.task == "classification":
            classes = np.array(sorted(summary.class_counts))
            counts = np.array([summary.class_counts[c] for c in classes], dtype=np.float64)
            # class_weight "balanced", as scikit-learn's compute_sample_weight: rows / (classes x count)
            self._balanced = summary.rows / (len(classes) * counts) if params.class_weight else None
            self.classes = classes
            objective: dict[str, Any] = {"objective": "binary:logistic"}
            if len(classes) > 2:
                objective = {"objective": "multi:softprob", "num_class": len(classes)}
            self.booster_params.update(objective)
        else:
            self.booster_params["objective"] = "reg:squarederror"

    def targets(self, y: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels as XGBoost's codes (classification) or values, and each row's weight."""
        if self.classes is None:
            return y.to_numpy(np.float64), None
        codes = np.searchsorted(self.classes, y.to_numpy())
        return codes, None if self._balanced is None else self._balanced[codes]

    def estimator(self, estimator: BaseEstimator, booster: Any) -> BaseEstimator:
        """The pipeline's estimator holding the trained booster, as its own fit would have left it."""
        import xgboost

        if self.classes is None:
            estimator.load_model(booster.save_raw())
            return estimator
        assert isinstance(estimator, LabelledXGBClassifier)
        estimator.classes_ = self.classes
        estimator.booster_ = xgboost.XGBClassifier(**self.options)
        estimator.booster_.load_model(booster.save_raw())
        return estimator


def refuse_in_memory_steps(params: TrainParams) -> None:
    if params.cv_folds or params.search.kind != "none":
        raise ConfigError(
            "train.cv_folds and train.search fit the training split in memory; with data.partition_rows "
            "XGBoost streams it instead: set train.cv_folds: 0 and train.search.kind: none "
            "(evaluate still scores every test row)"
        )


def first_pass(
    pipeline: Pipeline, schema: DatasetSchema, params: TrainParams, train: Path, rows: int
) -> tuple[Any, Objective, int]:
    """What every streamed XGBoost fit (here, or across Dask workers) decides before training: the fitted
    encoder, the objective, and the split's row count."""
    refuse_in_memory_steps(params)
    summary = summarize(train, schema, rows)
    features = fit_features(pipeline.named_steps["features"], summary)
    summary.first = None  # a partition XGBoost's training need not hold
    return features, Objective(params, summary), summary.rows


def fit_xgboost_in_partitions(
    pipeline: Pipeline, schema: DatasetSchema, params: TrainParams, train: Path, rows: int
) -> tuple[Pipeline, int]:
    """The pipeline (features, then XGBoost) fitted on `train` read `rows` rows at a time, and the
    split's row count."""
    import xgboost

    features, objective, train_rows = first_pass(pipeline, schema, params, train, rows)
    partitions = _Partitions(train, schema, rows, features, objective.targets)
    with tempfile.TemporaryDirectory(prefix="mlcd-xgboost-pages-") as pages:
        matrix = external_memory_matrix(partitions, str(Path(pages) / "cache"), params.xgboost.max_bin)
        booster = xgboost.train(objective.booster_params, matrix, num_boost_round=params.xgboost.n_estimators)
        del matrix
    estimator = objective.estimator(pipeline.named_steps["model"], booster)
    return Pipeline([("features", features), ("model", estimator)]), train_rows
