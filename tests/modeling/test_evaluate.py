import numpy as np

from mlcd.config import HIGHER_IS_BETTER
from mlcd.modeling.evaluate import (
    classification_metrics,
    regression_metrics,
    sample_rows,
    thin,
)


def test_thin_keeps_both_ends_and_the_limit():
    kept = thin(1000, 50)
    assert kept[0] == 0 and kept[-1] == 999
    assert len(kept) == 50
    assert list(thin(10, 50)) == list(range(10))


def test_sample_rows_is_seeded_and_sorted():
    a, b = sample_rows(10_000, 100, seed=3), sample_rows(10_000, 100, seed=3)
    assert np.array_equal(a, b)
    assert np.all(np.diff(a) > 0)


def test_metric_values_on_a_known_case():
    y = np.array(["b", "m", "m", "b"])
    predicted = np.array(["b", "m", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    scores = classification_metrics(y, predicted, proba, ["b", "m"], positive="m")
    assert scores["accuracy"] == 0.75
    assert scores["precision"] == 1.0
    assert scores["recall"] == 0.5
    assert scores["roc_auc"] == 1.0
    assert set(scores) <= set(HIGHER_IS_BETTER)


def test_regression_metrics():
    scores = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert scores == {
        "mse": round(4 / 3, 6),
        "rmse": round(np.sqrt(4 / 3), 6),
        "mae": round(2 / 3, 6),
        "r2": -1.0,
    }
    assert set(scores) <= set(HIGHER_IS_BETTER)
