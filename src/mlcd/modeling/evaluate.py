"""Evaluate: test-set metrics, plot data for `dvc plots`, and the same plots as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from mlcd.config import PLOT_NAMES, DataParams, EvaluateParams, ProjectPaths
from mlcd.console import stage
from mlcd.data.model_input import read_split, split_partitions
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.files import atomic_dir, write_json
from mlcd.modeling import plots
from mlcd.modeling.model_io import load_model


def _r(value: float) -> float:
    return round(float(value), 6)


def classification_metrics(
    y: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray,
    classes: list[str],
    positive: str | None,
) -> dict[str, float]:
    """Binary: precision, recall, F1 and average precision of the positive class.

    Multiclass: macro averages (every class counts the same) and weighted ones (by
    support). Balanced accuracy in both, so imbalanced data can be gated on it.
    """
    averaging: dict[str, Any] = (
        {"average": "binary", "pos_label": positive} if positive else {"average": "macro"}
    )
    scores = {
        "accuracy": skm.accuracy_score(y, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, zero_division=0, **averaging),
        "recall": skm.recall_score(y, predicted, zero_division=0, **averaging),
        "f1": skm.f1_score(y, predicted, zero_division=0, **averaging),
    }
    if positive:
        score = proba[:, classes.index(positive)]
        scores["roc_auc"] = skm.roc_auc_score(y == positive, score)
        scores["average_precision"] = skm.average_precision_score(y == positive, score)
    else:
        scores["precision_weighted"] = skm.precision_score(y, predicted, zero_division=0, average="weighted")
        scores["recall_weighted"] = skm.recall_score(y, predicted, zero_division=0, average="weighted")
        scores["f1_weighted"] = skm.f1_score(y, predicted, zero_division=0, average="weighted")
        scores["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
    scores["log_loss"] = skm.log_loss(y, proba, labels=classes)
    return {name: _r(value) for name, value in scores.items()}


def per_class_metrics(y: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support of every class: what a macro average or the positive class hides."""
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, predicted, labels=classes, zero_division=0
    )
    return {
        label: {"precision": _r(p), "recall": _r(r), "f1": _r(f), "support": int(n)}
        for label, p, r, f, n in zip(classes, precision, recall, f1, support, strict=True)
    }


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    mse = skm.mean_squared_error(y, predicted)
    return {
        "mse": _r(mse),
        "rmse": _r(np.sqrt(mse)),
        "mae": _r(skm.mean_absolute_error(y, predicted)),
        "r2": _r(skm.r2_score(y, predicted)),
    }


def thin(n: int, limit: int) -> np.ndarray:
    """Indices of at most `limit` evenly spaced points, always keeping both ends."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def curve_points(
    y_true: np.ndarray, score: np.ndarray, limit: int
) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    fpr, tpr, roc_thresholds = skm.roc_curve(y_true, score)
    precision, recall, pr_thresholds = skm.precision_recall_curve(y_true, score)
    roc = [
        {"fpr": _r(fpr[i]), "tpr": _r(tpr[i]), "threshold": _r(min(roc_thresholds[i], 1.0))}
        for i in thin(len(fpr), limit)
    ]
    # precision_recall_curve has one threshold fewer than points; the last point has none.
    pr_thresholds = np.append(pr_thresholds, 1.0)
    pr = [
        {"recall": _r(recall[i]), "precision": _r(precision[i]), "threshold": _r(pr_thresholds[i])}
        for i in thin(len(recall), limit)
    ]
    return roc, pr


def plot_data(
    schema: DatasetSchema,
    y: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str],
    params: EvaluateParams,
    seed: int,
) -> dict[str, list[dict[str, Any]]]:
    """Per-plot records in the shape `dvc plots` reads: {plot name: [row, ...]}."""
    rows = sample_rows(len(y), params.plot_rows, seed)
    if schema.task == "regression":
        return {"predicted_vs_actual": [{"actual": _r(y[i]), "predicted": _r(predicted[i])} for i in rows]}
    data: dict[str, list[dict[str, Any]]] = {
        "confusion": [{"actual": str(y[i]), "predicted": str(predicted[i])} for i in rows]
    }
    positive = schema.positive_class
    if positive is not None and proba is not None:
        score = proba[:, classes.index(positive)]
        data["roc"], data["precision_recall"] = curve_points(y == positive, score, params.plot_points)
    return data


def write_plots(data: dict[str, list[dict[str, Any]]], plot_dir: Path) -> None:
    for name in PLOT_NAMES:
        # A bare [] is how dvc skips a plot quietly; {name: []} would be an error in `dvc plots show`.
        records = data.get(name)
        write_json(plot_dir / f"{name}.json", {name: records} if records else [])


def predictions(
    model: Any, test: Path, schema: DatasetSchema, partition_rows: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The test split's targets, predictions and (classification) probabilities: from one matrix, or
    with data.partition_rows partition by partition, so memory holds the answers, not the features."""
    parts = (
        [read_split(test, schema)]
        if partition_rows is None
        else split_partitions(test, schema, partition_rows)
    )
    targets, predicted, proba = [], [], []
    for x, y in parts:
        targets.append(y.to_numpy())
        predicted.append(model.predict(x))
        if schema.task == "classification":
            proba.append(model.predict_proba(x))
    if len(targets) == 1:  # read whole: the arrays as they are (no copy)
        return targets[0], predicted[0], proba[0] if proba else None
    return np.concatenate(targets), np.concatenate(predicted), np.concatenate(proba) if proba else None


def run_evaluate(data: DataParams, params: EvaluateParams, paths: ProjectPaths) -> dict[str, float]:
    with stage("evaluate") as log:
        schema = load_schema(paths.schema(data)).for_model()
        model = load_model(paths.model)
        y, predicted, proba = predictions(model, paths.test_data, schema, data.partition_rows)
        if schema.task == "classification":
            classes = [str(c) for c in model.classes_]
            assert proba is not None
            scores = classification_metrics(y, predicted, proba, classes, schema.positive_class)
        else:
            classes = []
            scores = regression_metrics(y, predicted)
        write_json(paths.metrics, scores)
        # Regression writes {}: the file is a declared output of every evaluate run.
        write_json(paths.per_class_metrics, per_class_metrics(y, predicted, classes) if classes else {})
        records = plot_data(schema, y, predicted, proba, classes, params, data.seed)
        # Whole directories are swapped in, so no plot of an earlier task lingers.
        with atomic_dir(paths.plots) as plot_dir, atomic_dir(paths.figures) as figure_dir:
            write_plots(records, plot_dir)
            figures = plots.render_figures(schema, y, predicted, proba, classes, records, figure_dir)
        log.add(", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        log.add(
            f"{len(y):,} test rows; -> {paths.metrics}, {paths.plots}/, "
            f"{len(figures)} PNG in {paths.figures}/"
        )
        return scores
