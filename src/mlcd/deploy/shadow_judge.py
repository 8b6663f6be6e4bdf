"""The mirror's receiver in a shadow rollout: nginx copies every request here (its answer is thrown
away), and the judge sends it on to the candidate, timing it and keeping its answer.

It answers nginx at once and queues the request for a few forwarders, each holding one kept-alive
connection to the candidate, so the mirror never holds nginx's request and the candidate is timed,
not the judge's own connection churn. The queue is bounded: when the forwarders fall behind, a
request is dropped and counted (`dropped`), which says the judge, not the candidate, was short.
It listens on 127.0.0.1 only and keeps a bounded number of bodies (those it will compare).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 8 * 1024 * 1024  # nginx's client_max_body_size: nothing larger reaches the mirror
WORK_PATHS = ("/predict", "/invocations")
FORWARDED_HEADERS = ("content-type", "authorization", "x-request-id")
FORWARDERS = 8
QUEUED = 1000


@dataclass(frozen=True)
class Mirrored:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: Any  # the candidate's decoded JSON answer


def answers_in(path: str, answer: Any) -> list[Any] | None:
    """The predictions in an API answer (labels or values), whichever protocol asked; None if none."""
    if not isinstance(answer, dict):
        return None
    if path.startswith("/v2/"):
        for output in answer.get("outputs") or []:
            if isinstance(output, dict) and output.get("name") in ("label", "prediction"):
                data = output.get("data")
                return data if isinstance(data, list) else None
        return None
    found = answer.get("labels", answer.get("predictions"))
    return found if isinstance(found, list) else None


def is_work(path: str) -> bool:
    return path in WORK_PATHS or (path.startswith("/v2/models/") and path.endswith("/infer"))


@dataclass
class Judge:
    """Counts, statuses and times of the mirrored requests; the first `keep` answered ones in full."""

    candidate_port: int
    timeout: float
    keep: int
    requests: int = 0  # forwarded to the candidate
    errors: int = 0  # 5xx answers, timeouts and refused connections
    dropped: int = 0  # not forwarded: the queue was full
    seconds: list[float] = field(default_factory=list)
    kept: list[Mirrored] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: queue.Queue[tuple[str, dict[str, str], bytes] | None] = field(
        default_factory=lambda: queue.Queue(QUEUED)
    )

    def offer(self, path: str, headers: dict[str, str], body: bytes) -> None:
        try:
            self.waiting.put_nowait((path, headers, body))
        except queue.Full:
            with self.lock:
                self.dropped += 1

    def forwarder(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.candidate_port, timeout=self.timeout)
        while (item := self.waiting.get()) is not None:
            path, headers, body = item
            started = time.perf_counter()
            status, answer = 0, None
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                status, raw = response.status, response.read()
                if status == 200:
                    answer = json.loads(raw)
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()  # a timeout leaves the connection mid-answer: start a new one
            self._count(path, headers, body, status, answer, time.perf_counter() - started)
        connection.close()

    def _count(
        self, path: str, headers: dict[str, str], body: bytes, status: int, answer: Any, elapsed: float
    ) -> None:
        with self.lock:
            self.requests += 1
            self.seconds.append(elapsed)
            if status == 0 or status >= 500:
                self.errors += 1
            elif answer is not None and len(self.kept) < self.keep:
                self.kept.append(Mirrored(path, headers, body, answer))

    def serve(self) -> JudgeServer:
        return JudgeServer(self)


class JudgeServer:
    def __init__(self, judge: Judge) -> None:
        outer = judge

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if not is_work(self.path) or not 0 <= length <= MAX_BODY:
                    self.send_response(204)
                    self.end_headers()
                    return
                body = self.rfile.read(length)
                headers = {k: v for k in FORWARDED_HEADERS if (v := self.headers.get(k)) is not None}
                self.send_response(204)
                self.end_headers()
                outer.offer(self.path, headers, body)

            def do_GET(self) -> None:
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per mirrored request would drown the rollout's own lines

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # nginx opens a connection per mirrored request
            # server_close() waits for the handlers (they answer at once): none queues after the end
            daemon_threads = False
            block_on_close = True

        self.judge = judge
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.threads = [threading.Thread(target=self.server.serve_forever, daemon=True)]
        self.threads += [threading.Thread(target=judge.forwarder, daemon=True) for _ in range(FORWARDERS)]

    def __enter__(self) -> JudgeServer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        # What is still queued is dropped, not forwarded: a hung candidate would hold the end of the
        # shadow for QUEUED timeouts. The forwarders finish the request each holds, then stop.
        with contextlib.suppress(queue.Empty):
            while True:
                self.judge.waiting.get_nowait()
                with self.judge.lock:
                    self.judge.dropped += 1
        for _ in range(FORWARDERS):
            self.judge.waiting.put(None)
        for thread in self.threads[1:]:
            thread.join(self.judge.timeout + 5)
