"""Prometheus metrics: requests and latency by endpoint and status, predictions by class, unseen
categories by feature, model info.

With several workers, prometheus_client's multiprocess mode is used
(PROMETHEUS_MULTIPROC_DIR, set by `mlcd serve` before workers start).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ROUTES = frozenset({"/predict", "/health", "/ready", "/version", "/metrics"})

REQUESTS = Counter("mlcd_requests_total", "HTTP requests served.", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "mlcd_request_duration_seconds", "Time to serve a request.", ["endpoint"], buckets=LATENCY_BUCKETS
)
PREDICTIONS = Counter("mlcd_predictions_total", "Predicted labels (classifiers) or predictions.", ["label"])
# Text values the model never saw in training get no one-hot column: the answer ignores them.
# Labelled by feature only (features are the bundle's, a fixed set), never by the value sent.
UNSEEN_CATEGORIES = Counter(
    "mlcd_unseen_categories_total", "Text feature values not seen in training, by feature.", ["feature"]
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
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Times every request; unknown paths share one label so scanners cannot blow up cardinality."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            endpoint = scope["path"] if scope["path"] in ROUTES else "other"
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
            REQUESTS.labels(endpoint, scope["method"], str(status)).inc()
