"""The HTTP API: /predict, the Open Inference Protocol (/v2), MLflow's /invocations, probes, metrics.

Every route is listed once, in `Api.routes`, with whether it needs the bearer token and
whether it carries a body of work (those share the in-flight budget). What a client can
get wrong is a 4xx with a message; a client that leaves is a 499 in the metrics, never a 500.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd.config import ProjectPaths
from mlcd.serve import fast_json, mlflow_scoring, openapi, prometheus, v2
from mlcd.serve.asgi import (
    CLIENT_CLOSED,
    JSON,
    REQUEST_ID_HEADER,
    BusyError,
    ByteBudget,
    ClientDisconnectedError,
    PayloadError,
    Receive,
    Reply,
    Request,
    Scope,
    Send,
    error_reply,
    json_reply,
    lifespan,
    send_reply,
)
from mlcd.serve.direct import DirectCall
from mlcd.serve.drift_window import DriftPublisher, DriftWindow, drift_available
from mlcd.serve.feedback import (
    FeedbackLog,
    Label,
    LivePerformance,
    RecentAnswers,
    parse_labels,
    performance_floors,
)
from mlcd.serve.handoff import Handoff
from mlcd.serve.model import BundleModel, NonFiniteAnswerError
from mlcd.serve.payload import Batch, parse_json, to_batch
from mlcd.serve.prediction_log import PredictionLog
from mlcd.serve.rotating_log import LogSettings

# Bodies past this size are parsed, validated and run on a worker thread, so the event loop
# keeps answering /health and small requests meanwhile.
OFFLOAD_BYTES = 64 * 1024
OFFLOAD_THREADS = 2
RETRY_AFTER_SECONDS = 1
TOKEN_ENV = "MLCD_API_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    bundle: Path = ProjectPaths().bundle
    threads: int = 1
    max_batch: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    # Bytes of request bodies being read or worked on at once, per process; past it, 503 with
    # Retry-After. It bounds memory under a flood of large requests (README: "Limits").
    max_inflight_bytes: int = 16 * 1024 * 1024
    # The commit the bundle was built from (provenance.serving_commit finds it). Not in the manifest:
    # a DVC output must depend only on its declared inputs, or every commit would change it.
    git_commit: str | None = None
    # /predict, /version, /v2 and /invocations need "Authorization: Bearer <token>" when set.
    api_token: str | None = field(default_factory=lambda: os.environ.get(TOKEN_ENV) or None)
    # Swagger UI at /docs loads its scripts from a public CDN, so it is off unless asked for.
    docs: bool = False
    # Where and how answers are logged (`mlcd serve --log-dir`); None: not logged.
    log: LogSettings | None = None
    # Drift against the bundle's reference profile, when it has one and scipy is installed.
    drift: bool = True


Handler = Callable[[Request], Awaitable[Reply]]
BodyAnswer = Callable[[Request, bytes], Reply]


@dataclass(frozen=True)
class Work:
    """A route that carries a body of records, counted against the in-flight budget: `refused` is
    checked before the body is read (None: go on), `answer` answers from the body."""

    refused: Callable[[Request], Reply | None]
    answer: BodyAnswer


@dataclass(frozen=True)
class Route:
    label: str  # the endpoint label in metrics: the path, or its template
    handler: Handler | None = None  # a route without a body of work
    work: Work | None = None
    protected: bool = False  # needs the bearer token when one is set


class Api:
    """The ASGI application."""

    def __init__(self, model: BundleModel, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self.token = settings.api_token.encode() if settings.api_token else None
        self.model_ref = {"hash": model.model_hash, "git_commit": settings.git_commit}
        self.provenance = {
            **model.manifest.model_dump(mode="json", exclude_none=True),
            "git_commit": settings.git_commit,
        }
        self.v2 = v2.Protocol(model)
        classes = model.classes if model.is_classifier else None
        self.log: PredictionLog | None = None
        self.feedback_log: FeedbackLog | None = None
        self.recent: RecentAnswers | None = None
        if settings.log is not None:
            self.log = PredictionLog(
                settings.log, model.layout, model.model_hash, settings.git_commit, classes
            )
            self.feedback_log = FeedbackLog(settings.log, classes)
            self.recent = RecentAnswers()
        self.live = LivePerformance(classes, model.schema.positive_class)
        for metric, floor in performance_floors(
            model.manifest.metrics, model.manifest.params.get("gate")
        ).items():
            prometheus.LIVE_FLOOR.labels(metric).set(floor)
        self.drift: DriftWindow | None = None
        self.drift_publisher: DriftPublisher | None = None
        if settings.drift and model.reference is not None and drift_available():
            self.drift = DriftWindow(model.reference, model.layout, classes)
        self.handoff = self._handoff(settings.log)
        if self.drift is not None and self.handoff is not None:
            self.drift_publisher = DriftPublisher(self.drift, self.handoff.hand_on)
        self.budget = ByteBudget(settings.max_inflight_bytes)
        self.offload = ThreadPoolExecutor(OFFLOAD_THREADS, thread_name_prefix="mlcd-work")
        self.openapi = openapi.document(model, settings.max_batch, self.v2.name, token=self.token is not None)
        prometheus.record_model(
            model.model_hash,
            model.manifest.estimator,
            settings.git_commit,
            model.schema.class_balance,
        )
        v2_infer = Work(_nothing_refused, self.v2_infer)  # its refusals come from the body
        self.routes: dict[tuple[str, str], Route] = {
            ("POST", "/predict"): Route(
                "/predict", work=Work(self.json_refused, self.predict), protected=True
            ),
            ("POST", "/invocations"): Route(
                "/invocations", work=Work(self.invocations_refused, self.invocations), protected=True
            ),
            ("POST", "/feedback"): Route(
                "/feedback", work=Work(self.feedback_refused, self.feedback), protected=True
            ),
            ("GET", "/health"): Route("/health", self.health),
            ("GET", "/ready"): Route("/ready", self.ready),
            ("GET", "/metrics"): Route("/metrics", self.metrics),
            ("GET", "/version"): Route("/version", self.version, protected=True),
            ("GET", "/openapi.json"): Route("/openapi.json", self.openapi_json),
            ("GET", "/v2"): Route("/v2", self.v2_server, protected=True),
            # Probes, like /health and /ready: open even with a token.
            ("GET", "/v2/health/live"): Route("/v2/health/live", self.v2_live),
            ("GET", "/v2/health/ready"): Route("/v2/health/ready", self.v2_ready),
        }
        v2_handlers = {"metadata": self.v2_metadata, "ready": self.v2_model_ready}
        for kind, method, path, label in self.v2.paths():
            if kind == "infer":
                self.routes[method, path] = Route(label, work=v2_infer, protected=True)
            else:
                self.routes[method, path] = Route(label, v2_handlers[kind], protected=True)
        if settings.docs:
            self.routes["GET", "/docs"] = Route("/docs", self.docs)
        self.allowed: dict[str, list[str]] = {}
        for method, path in self.routes:
            self.allowed.setdefault(path, []).append(method)
        # The routes the protocol may answer itself (direct.py), by the request line's own bytes: a
        # path with a query, an escape or any other spelling takes the ASGI path. Each with its work
        # and its answer bound once, not per request.
        self.direct_routes: dict[tuple[bytes, bytes], tuple[Route, Work, BodyAnswer]] = {}
        for (method, path), route in self.routes.items():
            if route.work is not None:
                answer = functools.partial(self.answered, route.work)
                self.direct_routes[method.encode(), path.encode()] = (route, route.work, answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.close)
            return
        if scope["type"] != "http":
            # A WebSocket upgrade (uvicorn offers one when a WebSocket library is installed): closing
            # before accepting makes uvicorn answer HTTP 403. The API has no WebSocket route.
            prometheus.REFUSED.labels("upgrade").inc()
            await send({"type": "websocket.close", "code": 1008})
            return
        started = time.perf_counter()
        request = Request(scope["method"], scope["path"], scope["headers"], receive)
        if request.header(b"upgrade") is not None:
            # uvicorn without a WebSocket library passes an upgrade request on as plain HTTP.
            prometheus.REFUSED.labels("upgrade").inc()
            await send_reply(send, refusal(request, 400, "this API does not upgrade connections"))
            return
        route = self.route(request)
        try:
            reply = await self.guarded(route, request) if route else self.not_routed(request)
        except ClientDisconnectedError:
            reply = Reply(CLIENT_CLOSED, b"")
        except Exception:
            prometheus.observe(route.label if route else "other", request.method, 500, started)
            raise
        if reply.status != CLIENT_CLOSED:
            # Every answer to a body of work names its request id, refusals too (a client's logs).
            extra = ((REQUEST_ID_HEADER, request.request_id.encode()),) if route and route.work else ()
            await send_reply(send, reply, extra)
        prometheus.observe(route.label if route else "other", request.method, reply.status, started)

    def route(self, request: Request) -> Route | None:
        return self.routes.get((request.method, request.path))

    def not_routed(self, request: Request) -> Reply:
        allowed = self.allowed.get(request.path)
        if allowed:
            status, message = 405, f"use {' or '.join(allowed)} on {request.path}"
            headers: tuple[tuple[bytes, bytes], ...] = ((b"allow", ", ".join(allowed).encode()),)
        else:
            # No redirect for a trailing slash: one built from the Host header would send the client anywhere.
            status, message, headers = 404, f"no route {request.path}; see /openapi.json", ()
            if request.path.startswith("/v2/"):
                message = self.v2.not_found(request.path)
        return refusal(request, status, message, headers)

    async def guarded(self, route: Route, request: Request) -> Reply:
        if request.authorizations > 1:
            return refusal(request, 400, "send one Authorization header, not several")
        if route.protected and self.token is not None and not self.authorized(request):
            message = "send the API token as 'Authorization: Bearer <token>'"
            return refusal(request, 401, message, ((b"www-authenticate", b"Bearer"),))
        if route.work is None:
            assert route.handler is not None
            return await route.handler(request)
        try:
            return await self.worked(route.work, request)
        except BusyError:
            return self.busy(request)
        finally:
            self.budget.give(request.charged)

    def busy(self, request: Request) -> Reply:
        message = f"busy: {self.budget.used:,} bytes of requests in flight; retry in {RETRY_AFTER_SECONDS} s"
        return refusal(request, 503, message, ((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),))

    def authorized(self, request: Request) -> bool:
        sent = request.header(b"authorization") or ""
        scheme, _, token = sent.partition(" ")
        return (
            scheme.lower() == "bearer"
            and self.token is not None
            and hmac.compare_digest(token.strip().encode(), self.token)
        )

    async def worked(self, work: Work, request: Request) -> Reply:
        """Read the body, then answer it here or, when large, on a worker thread."""
        refused = work.refused(request)
        if refused is not None:
            return refused
        try:
            body = await request.body(self.settings.max_body_bytes, self.budget)
        except PayloadError as exc:
            return refusal(request, exc.status, exc.detail)
        if len(body) < OFFLOAD_BYTES:
            return self.answered(work, request, body)
        return await asyncio.get_running_loop().run_in_executor(
            self.offload, self.answered, work, request, body
        )

    @staticmethod
    def answered(work: Work, request: Request, body: bytes) -> Reply:
        try:
            return work.answer(request, body)
        except PayloadError as exc:
            return refusal(request, exc.status, exc.detail)

    def direct(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> DirectCall | None:
        """A DirectCall when the protocol may answer this request itself (direct.py): a body of work
        on an exact route path, small, of a declared length, authorized and of an accepted media
        type. None sends it the ASGI way, which answers every case, refusals included."""
        known = self.direct_routes.get((method, url))
        if known is None:
            return None
        route, work, answer = known
        request = Request(method.decode("ascii"), url.decode("ascii"), headers)
        length = request.declared_length
        if (
            length is None
            or length >= OFFLOAD_BYTES
            or length > self.settings.max_body_bytes
            or request.authorizations > 1
            or b"transfer-encoding" in request.headers
            or b"upgrade" in request.headers
            or (route.protected and self.token is not None and not self.authorized(request))
            or work.refused(request) is not None
        ):
            return None
        return DirectCall(request, route.label, self.budget, answer, self.busy)

    def _handoff(self, log: LogSettings | None) -> Handoff | None:
        """What the closed loop takes of each answer, handed off the request path; None: nothing."""
        takers = [part.take for part in (self.log, self.recent, self.drift) if part is not None]
        if not takers:
            return None
        if log is None:  # drift alone: a batch dropped is a sample fewer, nothing a log misses
            return Handoff(takers, LogSettings.max_queued_records, lambda records: None)
        dropped = prometheus.LOG_DROPPED.labels("queue_full").inc
        return Handoff(takers, log.max_queued_records, dropped)

    def close(self) -> None:
        """The server stops: what is handed off reaches the logs, which write what they hold."""
        for part in (self.handoff, self.log, self.feedback_log, self.drift_publisher):
            if part is not None:
                part.close()

    def predicted(self, batch: Batch, request: Request, endpoint: str) -> dict[str, Any]:
        """The model's answer for a validated batch, counted in the metrics and logged; 422 if not finite."""
        try:
            result, values = self.model.answer(batch.numbers, batch.texts)
        except NonFiniteAnswerError as exc:
            shown = ", ".join(map(str, exc.rows[:10])) + (", ..." if len(exc.rows) > 10 else "")
            raise PayloadError(
                422,
                f"the model gives no finite answer for record {shown}: the values are valid one by one "
                "but extreme together; send values nearer the training data's range",
            ) from None
        if "labels" in result:
            prometheus.count_predictions(result["labels"])
        else:
            prometheus.sum_predictions(result["predictions"])
        for feature, count in self.model.unseen(batch.texts).items():
            prometheus.UNSEEN_CATEGORIES.labels(feature).inc(count)
        if self.handoff is not None:
            self.handoff.put(request.request_id, endpoint, batch, result, values)
        return result

    # --- /predict and MLflow's /invocations

    @staticmethod
    def json_refused(request: Request) -> Reply | None:
        if request.media_type == JSON:
            return None
        shown = request.header(b"content-type") or "none"
        return error_reply(415, f"send JSON with Content-Type: {JSON} (got {shown!r})")

    def predict(self, request: Request, body: bytes) -> Reply:
        layout, max_batch = self.model.layout, self.settings.max_batch
        numbers = fast_json.predict_numbers(body, layout, max_batch)
        batch = Batch(numbers) if numbers is not None else to_batch(parse_json(body), layout, max_batch)
        result = self.predicted(batch, request, "/predict")
        return json_reply({**result, "model": self.model_ref, "request_id": request.request_id})

    @staticmethod
    def invocations_refused(request: Request) -> Reply | None:
        if request.media_type in mlflow_scoring.MEDIA_TYPES:
            return None
        shown = request.header(b"content-type") or "none"
        kinds = " or ".join(mlflow_scoring.MEDIA_TYPES)
        return error_reply(415, f"send {kinds} (got {shown!r})")

    def invocations(self, request: Request, body: bytes) -> Reply:
        records = mlflow_scoring.records(body, request.media_type, self.model.layout)
        batch = to_batch(records, self.model.layout, self.settings.max_batch)
        result = self.predicted(batch, request, "/invocations")
        return json_reply(mlflow_scoring.answer(result, self.model_ref, request.request_id))

    # --- delayed labels

    def feedback_refused(self, request: Request) -> Reply | None:
        if self.recent is None or self.feedback_log is None:
            return error_reply(
                409, "this server keeps no prediction log to match labels with: start it with --log-dir"
            )
        return self.json_refused(request)

    def feedback(self, request: Request, body: bytes) -> Reply:
        recent, feedback_log, handoff = self.recent, self.feedback_log, self.handoff
        assert recent is not None and feedback_log is not None and handoff is not None  # feedback_refused
        parsed = parse_labels(parse_json(body), self.live.classes, self.settings.max_batch)
        handoff.hand_on()  # answers given in the last few milliseconds can be matched too
        labels = [Label(rid, row, truth, recent.get(rid, row)) for rid, row, truth in parsed]
        feedback_log.record(labels)
        matched = sum(label.predicted is not None for label in labels)
        prometheus.FEEDBACK.labels("matched").inc(matched)
        prometheus.FEEDBACK.labels("unknown").inc(len(labels) - matched)
        live = self.live.add(labels)
        return json_reply(
            {"received": len(labels), "matched": matched, "unknown": len(labels) - matched, "live": live}
        )

    # --- the Open Inference Protocol

    async def v2_server(self, request: Request) -> Reply:
        return json_reply(self.v2.server_metadata())

    async def v2_live(self, request: Request) -> Reply:
        return json_reply({"live": True})

    async def v2_ready(self, request: Request) -> Reply:
        return json_reply({"ready": True})

    async def v2_metadata(self, request: Request) -> Reply:
        return json_reply(self.v2.model_metadata())

    async def v2_model_ready(self, request: Request) -> Reply:
        return json_reply({"name": self.v2.name, "ready": True})

    def v2_infer(self, request: Request, body: bytes) -> Reply:
        layout, max_batch = self.model.layout, self.settings.max_batch
        header_length = request.header(v2.HEADER_LENGTH.encode())
        numbers = fast_json.v2_numbers(body, layout, max_batch) if header_length is None else None
        if numbers is not None:
            call, batch = v2.PLAIN_CALL, Batch(numbers)
        else:
            call = self.v2.parse(body, header_length)
            batch = call.batch(layout, max_batch)
        result = self.predicted(batch, request, "/v2/infer")
        return json_reply(self.v2.response(call, result, request.request_id))

    # --- probes, provenance, metrics, contract

    async def health(self, request: Request) -> Reply:
        return json_reply({"status": "ok"})

    async def ready(self, request: Request) -> Reply:
        return json_reply({"status": "ready", "model_hash": self.model.model_hash})

    async def version(self, request: Request) -> Reply:
        return json_reply(self.provenance)

    async def metrics(self, request: Request) -> Reply:
        body, content_type = prometheus.render()
        return Reply(200, body, content_type)

    async def openapi_json(self, request: Request) -> Reply:
        return json_reply(self.openapi)

    async def docs(self, request: Request) -> Reply:
        return Reply(200, openapi.SWAGGER_PAGE, "text/html; charset=utf-8")


def refusal(
    request: Request,
    status: int,
    detail: list[dict[str, Any]] | str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Reply:
    """A refusal in the path's protocol's body shape: {"error": "..."} under /v2, else {"detail": ...}."""
    if request.path.startswith("/v2"):
        return json_reply({"error": v2.error_text(detail)}, status, headers)
    return error_reply(status, detail, headers)


def _nothing_refused(request: Request) -> Reply | None:
    return None


def create_app(model: BundleModel, settings: ServeSettings) -> Api:
    return Api(model, settings)
