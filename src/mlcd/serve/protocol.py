"""uvicorn's HTTP protocol (httptools) with the limits a public endpoint needs.

uvicorn alone accepts headers of any size, never closes a connection that sends nothing,
and waits forever for a body sent a byte a second. Here:
- request headers past `max_header_bytes` get 431 and the connection is closed;
- a connection idle for `keepalive_seconds`, before its first request or between requests, is closed;
- a request whose headers and body have not all arrived within `request_seconds` gets 408;
- a reply the client has not read within `write_seconds` (the transport's buffer stays full) is
  dropped with its connection, so clients that never read cannot pin memory and descriptors;
- past `max_connections - probe_reserve` open connections, a new one may only ask a probe
  (/health, /ready, /v2/health/...): anything else gets 503; past `max_connections`, every new
  connection gets 503 and is closed, before the process runs out of descriptors.
Those refusals happen before the app sees a request and are counted in
mlcd_refused_requests_total{reason}.

A plainly well-formed request for a body of work is answered by this protocol itself, without
ASGI's task and messages, when the app offers it a DirectCall (`app.direct`, serve/direct.py says
why); every other request goes through ASGI as uvicorn runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

# Private uvicorn API: pyproject.toml pins the range these were tested on, and
# tests/serve/test_protocol_fence.py fails with a clear message if what is used here changes.
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from mlcd.serve import prometheus


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 16 * 1024
    keepalive_seconds: float = 5.0
    request_seconds: float = 30.0
    write_seconds: float = 30.0
    max_connections: int = 10_000  # kept below the descriptor limit (server.connection_cap)

    @property
    def probe_reserve(self) -> int:
        """The last connections before the cap, kept for probes."""
        return max(1, min(50, self.max_connections // 5))


# Paths a load balancer or kubelet probes: they keep answering when connections are scarce.
PROBES = (b"/health", b"/ready", b"/v2/health/live", b"/v2/health/ready")


def _asks_a_probe(head: bytes) -> bool:
    """Whether a request's first bytes ask a probe path (its request line, as clients send it whole)."""
    words = head.split(b"\r\n", 1)[0].split(b" ")
    return len(words) == 3 and words[1].split(b"?", 1)[0] in PROBES


class DirectAnswer(Protocol):
    """A request this protocol answers itself: its body fed as it arrives, then one reply."""

    def feed(self, chunk: bytes) -> None: ...

    def reply(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]: ...

    def abandon(self) -> None: ...


# The app's offer (Api.direct): given the method, the request line's path and the headers.
DirectAnswers = Callable[[bytes, bytes, list[tuple[bytes, bytes]]], DirectAnswer | None]

# What the guard overrides or reads of HttpToolsProtocol (the fence test checks each is there).
USED_UVICORN_NAMES = (
    "connection_made",
    "connection_lost",
    "data_received",
    "pause_writing",
    "resume_writing",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "shutdown",
    "timeout_keep_alive_handler",
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn builds one per connection; the server hands it `limits` through functools.partial
    (uvicorn's Config accepts any protocol factory), so workers get them without the environment."""

    open_connections: ClassVar[int] = 0  # in this process (one event loop): state, not settings

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        # uvicorn's loaded app is the Api itself (no proxy-headers or trace middleware: server._run).
        self.direct_answers: DirectAnswers | None = getattr(self.app, "direct", None)
        self.direct: DirectAnswer | None = None  # the request being answered without ASGI
        self.direct_keep_alive = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        GuardedHttpToolsProtocol.open_connections += 1
        self.counted = True
        self.head_bytes = 0
        self.reading_head = True
        # When the bytes of the request being read began to arrive (None between requests). One
        # timer per connection checks it, re-armed only when it fires: a timer set and cancelled per
        # request cost several µs of the few dozen a request takes.
        self.request_began: float | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.write_deadline: asyncio.TimerHandle | None = None
        crowded = self.open_connections > self.limits.max_connections - self.limits.probe_reserve
        self.probes_only = crowded
        if self.open_connections > self.limits.max_connections:
            self._refuse(503, "too_many_connections", "too many connections; retry shortly")
            return
        # uvicorn arms its keep-alive timer only after a response; a silent connection would stay.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.keepalive_seconds, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "counted", False):
            GuardedHttpToolsProtocol.open_connections -= 1
            self.counted = False
        self._cancel_deadline()
        if self.direct is not None:
            self.direct.abandon()
            self.direct = None
        if getattr(self, "write_deadline", None) is not None:
            self.write_deadline.cancel()  # type: ignore[union-attr]
            self.write_deadline = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not reading: give it `write_seconds` to start again."""
        super().pause_writing()
        if self.write_deadline is None:
            self.write_deadline = self.loop.call_later(self.limits.write_seconds, self._not_reading)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.write_deadline is not None:
            self.write_deadline.cancel()
            self.write_deadline = None

    def _not_reading(self) -> None:
        self.write_deadline = None
        prometheus.REFUSED.labels("write_timeout").inc()
        self.transport.abort()  # close() would wait to flush the very bytes nobody reads

    def data_received(self, data: bytes) -> None:
        if self.probes_only and self.reading_head and not self.head_bytes and not _asks_a_probe(data):
            self._refuse(503, "too_many_connections", "too many connections; retry shortly")
            return
        if self.reading_head:
            end = data.find(b"\r\n\r\n")
            self.head_bytes += len(data) if end < 0 else end
            if self.head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "header_too_large", "the request headers are over the limit")
                return
        if self.request_began is None:
            self.request_began = self.loop.time()
            if self.deadline is None:
                self.deadline = self.loop.call_later(self.limits.request_seconds, self._check_deadline)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.direct = self._direct_answer()
        if self.direct is None:
            super().on_headers_complete()

    def _direct_answer(self) -> DirectAnswer | None:
        """The app's DirectCall, when nothing uvicorn does for a request is needed: no response still
        owed on this connection (pipelining keeps order), a client that reads its replies, no
        `Expect: 100-continue` and no upgrade."""
        if (
            self.direct_answers is None
            or self.expect_100_continue
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.flow.write_paused
            or self.parser.should_upgrade()
        ):
            return None
        self.direct_keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        return self.direct_answers(self.parser.get_method(), self.url, self.headers)

    def on_body(self, body: bytes) -> None:
        if self.direct is not None:
            self.direct.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.direct is not None:
            direct, self.direct = self.direct, None
            self._write_direct(*direct.reply())
        else:
            super().on_message_complete()
        self.reading_head, self.head_bytes = True, 0
        self.request_began = None

    def shutdown(self) -> None:
        """The server stops: a request being read for a direct answer is answered, then the
        connection closes (uvicorn does the same for a request its cycle is answering)."""
        if self.direct is not None:
            self.direct_keep_alive = False
            return
        super().shutdown()

    def _write_direct(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The reply, head and body in one write, as uvicorn's cycle would frame it; then what uvicorn
        does when a response completes (the keep-alive timer, the next pipelined request)."""
        content = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            content += (name, b": ", value, b"\r\n")
        if not self.direct_keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.transport.write(b"".join(content))
        if not self.direct_keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _cancel_deadline(self) -> None:
        if getattr(self, "deadline", None) is not None:
            self.deadline.cancel()  # type: ignore[union-attr]
            self.deadline = None

    def _check_deadline(self) -> None:
        """The connection's timer: 408 if the request being read is overdue, else wait for its deadline."""
        self.deadline = None
        if self.request_began is None:
            return  # between requests: the next one's first bytes arm the timer again
        left = self.request_began + self.limits.request_seconds - self.loop.time()
        if left > 0:
            self.deadline = self.loop.call_later(left, self._check_deadline)
            return
        self._too_slow()

    def _too_slow(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's next receive() is a disconnect
            self.cycle.message_event.set()
            if self.cycle.response_started:
                self.transport.close()
                return
        self._refuse(408, "too_slow", "the request did not arrive in time")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        prometheus.REFUSED.labels(reason).inc()
        if self.transport.is_closing():
            return
        body = message.encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()
