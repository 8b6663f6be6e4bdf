"""The HTTP API: /predict, /health, /ready, /version, /metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from mlcd.config import ProjectPaths
from mlcd.serve import prometheus
from mlcd.serve.model import BundleModel, NonFiniteAnswerError
from mlcd.serve.payload import PayloadError, parse_json, record_json_schema, to_batch

JSON = "application/json"


@dataclass(frozen=True)
class ServeSettings:
    bundle: Path = ProjectPaths().bundle
    threads: int = 1
    max_batch: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    # The commit the image was built from (the Dockerfile sets it). Not in the bundle's manifest: a
    # DVC output must depend only on its declared inputs, or every commit would change the bundle.
    git_commit: str | None = field(default_factory=lambda: os.environ.get("MLCD_GIT_COMMIT") or None)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, media_type=JSON
    )


def error(status: int, detail: Any) -> Response:
    return json_response({"detail": detail}, status)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked uploads declare no length
            raise PayloadError(413, f"the body exceeds the limit of {limit:,} bytes")
    return bytes(body)


def create_app(model: BundleModel, settings: ServeSettings) -> FastAPI:
    app = FastAPI(
        title="mlcd model API",
        version=model.model_hash[:12],
        description="Predictions from the packaged model bundle. POST one record or a list of records.",
    )
    app.add_middleware(prometheus.MetricsMiddleware)
    manifest = model.manifest
    prometheus.record_model(
        model.model_hash,
        manifest.get("estimator", "unknown"),
        settings.git_commit,
        model.schema.get("class_balance"),
    )
    model_ref = {"hash": model.model_hash, "git_commit": settings.git_commit}
    provenance = {**manifest, "git_commit": settings.git_commit}
    feature_names = model.names
    record = record_json_schema(model.features)

    @app.post(
        "/predict",
        summary="Predict for one record or a list of records",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"oneOf": [record, {"type": "array", "items": record}]}}},
                "description": (
                    f"Records keyed by feature name: {', '.join(feature_names)}. A feature the "
                    "schema marks nullable may be null or left out; the model imputes it as in training."
                ),
            }
        },
    )
    async def predict(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != JSON:
            return error(415, f"send JSON with Content-Type: {JSON} (got {content_type or 'none'!r})")
        try:
            payload = parse_json(await read_body(request, settings.max_body_bytes))
            batch = to_batch(payload, model.features, settings.max_batch)
        except PayloadError as exc:
            return error(exc.status, exc.detail)
        try:
            result = model.predict(batch.numbers, batch.texts)
        except NonFiniteAnswerError as exc:
            shown = ", ".join(map(str, exc.rows[:10])) + (", ..." if len(exc.rows) > 10 else "")
            return error(
                422,
                f"the model gives no finite answer for record {shown}: the values are valid one by one "
                "but extreme together; send values nearer the training data's range",
            )
        for label in result.get("labels", ()):
            prometheus.PREDICTIONS.labels(label).inc()
        for feature, count in model.unseen(batch.texts).items():
            prometheus.UNSEEN_CATEGORIES.labels(feature).inc(count)
        return json_response({**result, "model": model_ref})

    @app.get("/health", summary="The process is alive")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/ready", summary="The model is loaded and answered its own examples")
    async def ready() -> Response:
        return json_response({"status": "ready", "model_hash": model.model_hash})

    @app.get("/version", summary="The bundle manifest: hashes, commit, params, metrics")
    async def version() -> Response:
        return json_response(provenance)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = prometheus.render()
        return Response(body, media_type=content_type)

    return app
