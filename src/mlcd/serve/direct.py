"""Answers the HTTP protocol writes itself, without ASGI's task and messages.

A single-record prediction costs the server a few dozen µs of CPU, and ASGI's machinery was a
large share of it: a task and a scope per request, the receive and send messages, uvicorn's checks
of every header sent, the head and the body written apart. For a request that is plainly
well-formed (a body of records on an exact route path, a declared length under the offload size,
no upgrade, no `Expect`, authorized, of a media type the route takes: Api.direct decides) the
protocol (protocol.py) feeds the body to a DirectCall as it arrives and writes its reply in one
write. The answer is the one the ASGI path gives (Api.answered): the same validation, model, logs,
metrics and refusals. Everything else takes the ASGI path, which answers every case.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mlcd.serve import prometheus
from mlcd.serve.asgi import (
    CLIENT_CLOSED,
    REQUEST_ID_HEADER,
    BusyError,
    ByteBudget,
    Reply,
    Request,
    reply_headers,
)

_log = logging.getLogger("uvicorn.error")  # where uvicorn logs an application's errors
_SERVER_ERROR = Reply(500, b"Internal Server Error", "text/plain; charset=utf-8")


class DirectCall:
    """One request answered by the protocol: its body fed as it arrives, charged to the budget."""

    __slots__ = ("_answer", "_budget", "_busy", "_chunks", "_refuse_busy", "label", "request", "started")

    def __init__(
        self,
        request: Request,
        label: str,
        budget: ByteBudget,
        answer: Callable[[Request, bytes], Reply],
        refuse_busy: Callable[[Request], Reply],
    ) -> None:
        self.request, self.label, self._budget = request, label, budget
        self._answer, self._refuse_busy = answer, refuse_busy
        self.started = time.perf_counter()
        self._chunks: list[bytes] = []
        self._busy = False

    def feed(self, chunk: bytes) -> None:
        """Bytes of the body, as they arrive; past the in-flight budget the rest is not kept."""
        if self._busy:
            return
        try:
            self._budget.take(len(chunk))
        except BusyError:
            self._busy = True
            self._chunks.clear()
            return
        self.request.charged += len(chunk)
        self._chunks.append(chunk)

    def reply(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The whole body has arrived: the status, headers and body to write."""
        chunks = self._chunks
        try:
            if self._busy:
                reply = self._refuse_busy(self.request)
            else:
                reply = self._answer(self.request, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except Exception:
            _log.exception("mlcd: no answer to %s %s", self.request.method, self.request.path)
            reply = _SERVER_ERROR
        finally:
            self._budget.give(self.request.charged)
            self.request.charged = 0
        prometheus.observe(self.label, self.request.method, reply.status, self.started)
        extra = ((REQUEST_ID_HEADER, self.request.request_id.encode()),)
        return reply.status, reply_headers(reply, extra), reply.body

    def abandon(self) -> None:
        """The connection closed before the body was whole."""
        self._budget.give(self.request.charged)
        self.request.charged = 0
        prometheus.observe(self.label, self.request.method, CLIENT_CLOSED, self.started)
