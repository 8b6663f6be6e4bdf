"""Prometheus metrics: requests and latency by endpoint and status, predictions by class, unseen
categories by feature, model info.

With several workers, prometheus_client's multiprocess mode is used
(PROMETHEUS_MULTIPROC_DIR, set by `mlcd serve` before workers start).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("mlcd_requests_total", "HTTP requests served.", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "mlcd_request_duration_seconds", "Time to serve a request.", ["endpoint"], buckets=LATENCY_BUCKETS
)
PREDICTIONS = Counter("mlcd_predictions_total", "Predicted labels (classifiers) or predictions.", ["label"])
# A regressor's answers as sums, so a rollout can compare two versions' means in standard deviations.
PREDICTED_VALUE = Summary("mlcd_predicted_value", "A regressor's predicted values.")
PREDICTED_SQUARES = Counter("mlcd_predicted_value_squares", "Sum of a regressor's squared predicted values.")
# Text values the model never saw in training get no one-hot column: the answer ignores them.
# Labelled by feature only (features are the bundle's, a fixed set), never by the value sent.
UNSEEN_CATEGORIES = Counter(
    "mlcd_unseen_categories_total", "Text feature values not seen in training, by feature.", ["feature"]
)
# Refused by the HTTP protocol before the app saw a request (serve/protocol.py): headers too
# large, or a request that did not arrive in time.
REFUSED = Counter("mlcd_refused_requests_total", "Requests refused before routing, by reason.", ["reason"])
# The prediction log (serve/prediction_log.py): records written, and records dropped rather than
# slow an answer (the writer's queue was full) or because the disk refused them.
LOG_RECORDS = Counter("mlcd_prediction_log_records_total", "Answered records written to the prediction log.")
LOG_DROPPED = Counter(
    "mlcd_prediction_log_dropped_total",
    "Answered records the prediction log dropped, by reason (queue_full, write_error).",
    ["reason"],
)
# Delayed labels (serve/feedback.py): how they matched, the feedback log, and the model's live
# performance over the last labelled records each worker matched.
FEEDBACK = Counter(
    "mlcd_feedback_total", "Labels received on /feedback, by outcome (matched, unknown).", ["outcome"]
)
LOG_FILES_SHIPPED = Counter(
    "mlcd_log_files_shipped_total",
    "Closed log files uploaded to --log-remote, by log (predictions, feedback) and outcome.",
    ["log", "outcome"],
)
FEEDBACK_LOG_RECORDS = Counter("mlcd_feedback_log_records_total", "Labels written to the feedback log.")
FEEDBACK_LOG_DROPPED = Counter(
    "mlcd_feedback_log_dropped_total", "Labels the feedback log dropped, by reason.", ["reason"]
)
LIVE_PERFORMANCE = Gauge(
    "mlcd_live_performance",
    "The model's performance on the last labelled records (accuracy, f1 or macro_f1; mae, r2).",
    ["metric"],
    multiprocess_mode="liveall",
)
LIVE_FLOOR = Gauge(
    "mlcd_live_performance_floor",
    "The lowest live performance the gate would pass: the bundle's test score less gate.max_drop.",
    ["metric"],
    multiprocess_mode="liveall",
)
ESTIMATED_PERFORMANCE = Gauge(
    "mlcd_estimated_performance",
    "Binary classifiers: accuracy and F1 expected over the drift window from the model's calibrated "
    "probabilities, before any label arrives (CBPE).",
    ["metric"],
    multiprocess_mode="liveall",
)
LIVE_LABELLED = Gauge(
    "mlcd_live_labelled_records",
    "Labelled records the live performance is computed on.",
    multiprocess_mode="liveall",
)
# Drift of live traffic against the training split (serve/drift_window.py), per feature: the
# test's score (a p-value, or a distance; the method label says which) and its verdict.
FEATURE_DRIFT_SCORE = Gauge(
    "mlcd_feature_drift_score",
    "Drift score of a feature over the window: a p-value (ks, chisquare, z) or a distance.",
    ["feature", "method"],
    multiprocess_mode="liveall",
)
FEATURE_DRIFTED = Gauge(
    "mlcd_feature_drifted",
    "1 when the feature drifted over the window.",
    ["feature"],
    multiprocess_mode="liveall",
)
DRIFTED_SHARE = Gauge(
    "mlcd_drifted_features_share", "Share of watched features that drifted.", multiprocess_mode="liveall"
)
DATASET_DRIFT = Gauge(
    "mlcd_dataset_drift", "1 when the drifted share reaches monitor.drift_share.", multiprocess_mode="liveall"
)
PREDICTION_DRIFT_SCORE = Gauge(
    "mlcd_prediction_drift_score",
    "Drift score of the model's answers over the window against its answers on the training split.",
    ["method"],
    multiprocess_mode="liveall",
)
PREDICTION_DRIFTED = Gauge(
    "mlcd_prediction_drifted", "1 when the model's answers drifted.", multiprocess_mode="liveall"
)
DRIFT_WINDOW = Gauge(
    "mlcd_drift_window_records", "Served records in the drift window.", multiprocess_mode="liveall"
)
MODEL_INFO = Gauge(
    "mlcd_model_info",
    "The model being served (always 1), labelled with its hash.",
    ["model_hash", "estimator", "git_commit"],
    multiprocess_mode="liveall",
)

# The class shares the model was trained on, so a dashboard or alert can compare the live mix.
TRAINING_CLASS_SHARE = Gauge(
    "mlcd_training_class_share",
    "Share of each class in the training data (from the bundle).",
    ["label"],
    multiprocess_mode="liveall",
)


def record_model(
    model_hash: str, estimator: str, git_commit: str | None, class_balance: dict[str, float] | None = None
) -> None:
    MODEL_INFO.labels(model_hash, estimator, git_commit or "unknown").set(1)
    for label, share in (class_balance or {}).items():
        TRAINING_CLASS_SHARE.labels(label).set(share)


def render() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# labels() costs microseconds per call (a lock and a dict of tuples); the hot path reuses children.
_SERVED: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_PREDICTED: dict[str, Any] = {}


def observe(endpoint: str, method: str, status: int, started: float) -> None:
    """One request served. `endpoint` is a route's path or template, or "other": a scanner's paths
    cannot blow up the label set (and the HTTP parser admits only the standard methods)."""
    children = _SERVED.get((endpoint, method, status))
    if children is None:
        children = (LATENCY.labels(endpoint), REQUESTS.labels(endpoint, method, str(status)))
        _SERVED[endpoint, method, status] = children
    children[0].observe(time.perf_counter() - started)
    children[1].inc()


def count_predictions(labels: Iterable[str]) -> None:
    for label in labels:
        child = _PREDICTED.get(label)
        if child is None:
            child = _PREDICTED[label] = PREDICTIONS.labels(label)
        child.inc()


def sum_predictions(values: Iterable[float]) -> None:
    squares = 0.0
    for value in values:
        PREDICTED_VALUE.observe(value)
        squares += value * value
    PREDICTED_SQUARES.inc(squares)
