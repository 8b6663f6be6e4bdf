"""Per-feature drift: every score equals scipy's (or statsmodels') on the same samples, the server's
gauges equal the scores of what it served, training-like traffic stays undrifted, a shifted feature
drifts by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from prometheus_client.parser import text_string_to_metric_families
from scipy.spatial import distance
from starlette.testclient import TestClient
from statsmodels.stats.proportion import proportions_ztest

from mlcd.bundle import PREDICTION, Reference, open_bundle
from mlcd.monitor import drift
from mlcd.monitor.drift import scores
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.drift_window import DriftWindow
from mlcd.serve.handoff import Served, served
from mlcd.serve.payload import Batch
from mlcd.serve.server import load

TARGET = "diagnosis"
DRIFT_GAUGES = ("mlcd_feature_drift", "mlcd_prediction_drift", "mlcd_drift", "mlcd_dataset")


@pytest.fixture(scope="module")
def bundle(built_project: Path) -> Path:
    return built_project / "models" / "bundle"


@pytest.fixture(scope="module")
def reference(bundle: Path) -> Reference:
    opened = open_bundle(bundle)
    assert opened.reference is not None
    return opened.reference


@pytest.fixture(scope="module")
def training(built_project: Path) -> pd.DataFrame:
    return pd.read_parquet(built_project / "data" / "processed" / "train.parquet").drop(columns=TARGET)


def test_every_score_equals_scipys_on_the_same_samples():
    rng = np.random.default_rng(3)
    reference, current = rng.normal(0, 1, 700), rng.normal(0.2, 1.3, 250)
    reference[5] = current[7] = np.nan  # gaps are left out, as Evidently does
    ref, cur = reference[~np.isnan(reference)], current[~np.isnan(current)]
    assert drift.numeric_score("ks", reference, current) == scipy.stats.ks_2samp(ref, cur).pvalue
    tied = rng.integers(0, 9, 456).astype(np.float64)  # ties, as float32 inputs bring, and equal sizes
    for other in (rng.integers(0, 9, 1000).astype(np.float64), rng.integers(1, 9, 456).astype(np.float64)):
        assert drift.numeric_score("ks", tied, other) == scipy.stats.ks_2samp(tied, other).pvalue
    assert drift.numeric_score("wasserstein", reference, current) == pytest.approx(
        scipy.stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-12
    )
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    shares = [np.histogram(side, edges)[0] / len(side) for side in (ref, cur)]
    shares = [np.where(s == 0, 1e-4, s) for s in shares]
    assert drift.numeric_score("jensenshannon", reference, current) == pytest.approx(
        distance.jensenshannon(*shares), rel=1e-12
    )
    ref_counts, cur_counts = {"a": 50, "b": 30, "c": 20}, {"a": 20, "b": 25, "c": 15, "d": 3}
    observed = np.array([20, 25, 15, 3])
    expected = np.array([50, 30, 20, 0]) * observed.sum() / 100
    with np.errstate(divide="ignore", invalid="ignore"):
        assert (
            drift.categorical_score("chisquare", ref_counts, cur_counts)
            == scipy.stats.chisquare(observed, expected).pvalue
        )  # a level training never saw: p = 0
    no_new = {"a": 40, "b": 25, "c": 15}
    assert drift.categorical_score("chisquare", ref_counts, no_new) == pytest.approx(
        scipy.stats.chisquare([40, 25, 15], np.array([50, 30, 20]) * 0.8).pvalue, rel=1e-12
    )
    _, p_value = proportions_ztest([60, 45], [100, 120])  # pooled two-sided z-test
    assert drift.categorical_score("z", {"yes": 60, "no": 40}, {"yes": 45, "no": 75}) == pytest.approx(
        p_value, rel=1e-9
    )
    js = distance.jensenshannon([0.5, 0.3, 0.2, 1e-4], np.array([20, 25, 15, 3]) / 63)
    assert drift.categorical_score("jensenshannon", ref_counts, cur_counts) == pytest.approx(js, rel=1e-12)


def test_default_methods_follow_evidently():
    assert drift.default_method(455, 400, categorical=False) == "ks"
    assert drift.default_method(455, 3, categorical=False) == "chisquare"
    assert drift.default_method(455, 2, categorical=True) == "z"
    assert drift.default_method(455, 7, categorical=True) == "chisquare"
    assert drift.default_method(5000, 400, categorical=False) == "wasserstein"
    assert drift.default_method(5000, 7, categorical=True) == "jensenshannon"
    assert drift.is_drifted("ks", 0.04, 0.05) and not drift.is_drifted("ks", 0.06, 0.05)
    assert drift.is_drifted("wasserstein", 0.1, 0.1) and not drift.is_drifted("wasserstein", 0.09, 0.1)


def _served(numbers: np.ndarray, answer: tuple[dict, np.ndarray]) -> Served:
    return served("r", "/predict", Batch(numbers), *answer, when=0.0)


def _window(reference: Reference, bundle: Path, frame: pd.DataFrame) -> tuple[DriftWindow, list]:
    model = load(ServeSettings(bundle=bundle))
    window = DriftWindow(reference, model.layout, model.classes)
    numbers = frame[list(model.layout.names)].to_numpy(np.float32)
    answer = model.answer(numbers, {})
    window.take([_served(numbers, answer)])
    return window, answer[0]["labels"]


def test_training_like_traffic_stays_undrifted_in_95_percent_of_windows(reference, bundle, training):
    rng = np.random.default_rng(11)
    drifted: dict[str, int] = {}
    windows = 40
    for _ in range(windows):
        sample = training.iloc[rng.integers(0, len(training), reference.window)]
        window, _ = _window(reference, bundle, sample)
        numbers, texts, answers = window.snapshot()
        for name, (_, _, is_drifted) in scores(
            reference, numbers, window.numeric_names, texts, answers
        ).items():
            drifted[name] = drifted.get(name, 0) + is_drifted
    assert len(drifted) == 31  # 30 features and the predictions
    worst = max(drifted.items(), key=lambda item: item[1])
    assert worst[1] <= 0.05 * windows, f"{worst[0]} drifted in {worst[1]} of {windows} training-like windows"


def test_the_gauges_equal_the_scores_of_what_was_served_and_a_shift_is_named(reference, bundle, training):
    settings = ServeSettings(bundle=bundle)
    api = create_app(load(settings), settings)
    shifted = training.iloc[np.random.default_rng(5).integers(0, len(training), 600)].copy()
    shifted["mean_radius"] *= 1.3  # one feature moves; the others keep training's distribution
    with TestClient(api) as client:
        for start in range(0, 600, 100):
            records = shifted.iloc[start : start + 100].to_dict(orient="records")
            assert client.post("/predict", json=records).status_code == 200
        assert api.drift_publisher is not None
        found = api.drift_publisher.publish()
        metrics = client.get("/metrics").text
    gauges = {
        (sample.name, sample.labels.get("feature", sample.labels.get("method", ""))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name.startswith(
            ("mlcd_feature_drift", "mlcd_prediction_drift", "mlcd_drift", "mlcd_dataset")
        )
    }
    sample = np.asarray(reference.numeric["mean_radius"].sample)
    served = shifted["mean_radius"].to_numpy(np.float32).astype(np.float64)
    expected = scipy.stats.ks_2samp(sample, served).pvalue
    assert found["mean_radius"] == ("ks", expected, True)
    assert gauges["mlcd_feature_drift_score", "mean_radius"] == expected
    assert gauges["mlcd_feature_drifted", "mean_radius"] == 1
    assert gauges["mlcd_drift_window_records", ""] == 600
    undrifted = [name for name, (_, _, d) in found.items() if not d and name != PREDICTION]
    assert len(undrifted) >= 25  # the shift shows in mean_radius and the features computed from it
    share = sum(d for name, (_, _, d) in found.items() if name != PREDICTION) / 30
    assert gauges["mlcd_drifted_features_share", ""] == pytest.approx(share)
    assert gauges["mlcd_dataset_drift", ""] == (share >= 0.5)
    assert ("mlcd_prediction_drift_score", reference.tests[PREDICTION].method) in gauges


def test_reference_json_is_the_training_split(reference, training, bundle):
    assert reference.rows == len(training)
    assert sorted(reference.numeric["mean_radius"].sample) == sorted(training["mean_radius"].tolist())
    assert reference.tests["mean_radius"].method == "ks" and reference.tests[PREDICTION].method == "z"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert (
        "reference.json" in manifest["files"] and manifest["params"]["monitor"]["window"] == reference.window
    )


def test_the_window_holds_the_newest_records_in_order_and_its_queue_stays_bounded(
    reference, bundle, training
):
    """Batches are queued by reference and reach the ring when the window is read: a flood of
    batches added unread holds at most a window's records (plus one batch), and reading gives the
    last `window` records in the order they were answered, across the ring's wrap."""
    model = load(ServeSettings(bundle=bundle))
    window = DriftWindow(reference, model.layout, model.classes)
    size = reference.window
    names = list(model.layout.names)
    rows = training[names].to_numpy(np.float32)
    served: list[np.ndarray] = []
    rng = np.random.default_rng(3)
    for _round in range(3):  # read between rounds: the ring wraps at a different place each time
        for _ in range(400):
            batch = rows[rng.integers(0, len(rows), int(rng.integers(1, 9)))]
            window.take([_served(batch, model.answer(batch, {}))])
            served.append(batch)
            assert window._pending_rows < size + 9, "the queue grew past the window"
        numbers, _, answers = window.snapshot()
        newest = np.concatenate(served)[-size:]
        assert window.filled == size
        ring = np.roll(numbers, -window._next, axis=0)  # oldest first
        watched = [names.index(name) for name in window.numeric_names]
        np.testing.assert_array_equal(ring, newest[:, watched])
        assert len(answers) == size
