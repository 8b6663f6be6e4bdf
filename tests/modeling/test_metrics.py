"""Evaluate's metrics against plain scikit-learn on the same predictions, per kind of target."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcd.config import HIGHER_IS_BETTER
from mlcd.modeling.evaluate import classification_metrics


def _fake_scores(y: np.ndarray, classes: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(len(classes)), size=len(y))
    proba[np.arange(len(y)), [classes.index(v) for v in y]] += rng.uniform(0, 1.5, len(y))
    proba /= proba.sum(axis=1, keepdims=True)
    return np.array(classes)[proba.argmax(axis=1)], proba


def test_imbalanced_binary_metrics_are_about_the_positive_class():
    y = np.array(["ok"] * 190 + ["fraud"] * 10)
    classes = ["fraud", "ok"]
    predicted, proba = _fake_scores(y, classes, seed=1)
    scores = classification_metrics(y, predicted, proba, classes, positive="fraud")
    assert scores["f1"] == pytest.approx(skm.f1_score(y, predicted, pos_label="fraud"), abs=1e-6)
    assert scores["f1"] != pytest.approx(skm.f1_score(y, predicted, pos_label="ok"), abs=1e-3)
    assert scores["average_precision"] == pytest.approx(
        skm.average_precision_score(y == "fraud", proba[:, 0]), abs=1e-6
    )
    assert scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted), abs=1e-6)
    assert set(scores) <= set(HIGHER_IS_BETTER)


def test_multiclass_metrics_give_macro_and_weighted_averages():
    y = np.array(["a"] * 100 + ["b"] * 30 + ["c"] * 10)
    classes = ["a", "b", "c"]
    predicted, proba = _fake_scores(y, classes, seed=2)
    scores = classification_metrics(y, predicted, proba, classes, positive=None)
    for name, function in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert scores[name] == pytest.approx(
            function(y, predicted, average="macro", zero_division=0), abs=1e-6
        )
        weighted = function(y, predicted, average="weighted", zero_division=0)
        assert scores[f"{name}_weighted"] == pytest.approx(weighted, abs=1e-6)
    assert "average_precision" not in scores
    assert set(scores) <= set(HIGHER_IS_BETTER)


def test_per_class_figures_are_scikit_learns_for_every_class():
    from mlcd.modeling.evaluate import per_class_metrics

    y = np.array(["a"] * 100 + ["b"] * 30 + ["c"] * 10)
    predicted, _ = _fake_scores(y, ["a", "b", "c"], seed=3)
    table = per_class_metrics(y, predicted, ["a", "b", "c"])
    assert [row["support"] for row in table.values()] == [100, 30, 10]
    f1 = skm.f1_score(y, predicted, average=None, labels=["a", "b", "c"])
    assert [row["f1"] for row in table.values()] == pytest.approx(list(f1), abs=1e-6)
