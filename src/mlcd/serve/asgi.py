"""Just enough ASGI for the API: a request whose body is read within a limit, and a reply.

The API speaks ASGI directly rather than through a web framework: a framework's routing,
dependency injection and response classes cost more per request than validating a record
and running the model (measured in benchmarks/serve.py), and the API has a handful of
fixed routes.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = "application/json"
_JSON_BYTES = JSON.encode()
# nginx's status for a request whose client went away: not a server error in logs or metrics.
CLIENT_CLOSED = 499


# Longest piece of a client's input an error message quotes: an answer never grows with the request.
QUOTED_CHARS = 40


def clipped(text: str, show: Callable[[str], str] = str) -> str:
    """`text` (shown with `show`) cut to QUOTED_CHARS, saying how long it was."""
    if len(text) <= QUOTED_CHARS:
        return show(text)
    return f"{show(text[:QUOTED_CHARS])}... ({len(text):,} characters)"


def short(text: str) -> str:
    """`text` quoted for an error message, cut to QUOTED_CHARS."""
    return clipped(text, repr)


def ascii_length(text: str | None, most_digits: int = 15) -> int | None:
    """A byte count sent in a header, or None: ASCII digits only (str.isdigit also takes '²' and '٣')."""
    if text is None or not text or len(text) > most_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


class PayloadError(Exception):
    """The request cannot be served; `status` and `detail` form the response."""

    def __init__(self, status: int, detail: list[dict[str, Any]] | str) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


class BusyError(Exception):
    """The bytes of requests in flight would pass the server's budget: a 503 with Retry-After."""


class ByteBudget:
    """Request bytes held in memory (bodies arrived, not yet answered), charged as they arrive.

    Charging what a request declares would let a few clients that declare megabytes and send one
    byte refuse everyone; charging what arrives costs a trickling client only what it has sent.
    The first request is always let in, so one body up to the size limit is served even alone.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        if self.used and self.used + size > self.limit:
            raise BusyError
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size


class ClientDisconnectedError(Exception):
    """The client closed the connection before its whole body arrived."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


def json_reply(body: Any, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    return Reply(status, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), JSON, headers)


def error_reply(status: int, detail: Any, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    return json_reply({"detail": detail}, status, headers)


# The headers the API reads. One pass over a request's headers keeps the first of each, and counts
# Authorization headers (two credentials are refused: a proxy and this server might read different ones).
READ_HEADERS = frozenset(
    {
        b"content-type",
        b"content-length",
        b"upgrade",
        b"authorization",
        b"inference-header-content-length",
        b"x-request-id",
        b"transfer-encoding",
    }
)

REQUEST_ID_HEADER = b"x-request-id"
# A client's request id is kept when it is a plain token (a proxy's UUID, a trace id); anything
# else (long, spaces, control characters) would carry into logs and headers, so it is replaced.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Generated ids: a random prefix per process and a counter, unique across workers and restarts
# without a UUID's cost per request.
_ID_PREFIX = secrets.token_hex(6)
_next_id = itertools.count(1).__next__


class Request:
    """A request's method, path and the headers the API reads; its body through `receive` (ASGI) or,
    answered by the protocol itself (protocol.py), fed to a DirectCall (direct.py)."""

    def __init__(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]], receive: Receive | None = None
    ) -> None:
        self.receive = receive
        self.charged = 0  # body bytes taken from a ByteBudget, given back when answered
        self.method = method
        self.path = path
        self.headers: dict[bytes, bytes] = {}
        self.authorizations = 0
        self._request_id: str | None = None
        for key, value in headers:
            if key in READ_HEADERS:
                if key == b"authorization":
                    self.authorizations += 1
                self.headers.setdefault(key, value)

    @property
    def request_id(self) -> str:
        """The client's X-Request-Id when sane, else one made here (once; not a cached_property,
        whose lock cost a microsecond a request)."""
        if self._request_id is None:
            given = self.headers.get(REQUEST_ID_HEADER)
            if given is not None and _SANE_REQUEST_ID.fullmatch(given):
                self._request_id = given.decode("ascii")
            else:
                self._request_id = f"{_ID_PREFIX}-{_next_id():x}"
        return self._request_id

    def header(self, name: bytes) -> str | None:
        """A header the API reads (READ_HEADERS; name in lower case), or None."""
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    @property
    def declared_length(self) -> int | None:
        return ascii_length(self.header(b"content-length"))

    @property
    def media_type(self) -> str:
        sent = self.headers.get(b"content-type")
        if sent == _JSON_BYTES:  # what most clients send: no need to parse it
            return JSON
        return "" if sent is None else sent.decode("latin-1").split(";")[0].strip().lower()

    async def body(self, limit: int, budget: ByteBudget | None = None) -> bytes:
        """The whole body; 413 past `limit` bytes (declared or streamed); ClientDisconnectedError;
        BusyError when `budget` cannot take the bytes arrived."""
        if self.receive is None:
            raise RuntimeError("this request's body is fed to it, not received")
        declared = self.declared_length
        if declared is not None and declared > limit:
            raise PayloadError(413, f"the body is {declared:,} bytes; the limit is {limit:,}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError
            chunk = message.get("body", b"")
            size += len(chunk)
            if budget is not None and chunk:
                budget.take(len(chunk))
                self.charged += len(chunk)
            if size > limit:  # chunked uploads declare no length
                raise PayloadError(413, f"the body exceeds the limit of {limit:,} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def reply_headers(reply: Reply, extra: tuple[tuple[bytes, bytes], ...] = ()) -> list[tuple[bytes, bytes]]:
    """The headers of `reply`, whichever way it is sent."""
    return [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", str(len(reply.body)).encode("latin-1")),
        *reply.headers,
        *extra,
    ]


async def send_reply(send: Send, reply: Reply, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    headers = reply_headers(reply, extra)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def lifespan(receive: Receive, send: Send, on_shutdown: Callable[[], None] = lambda: None) -> None:
    """Nothing to start (the model loads before the server starts); `on_shutdown` when stopping."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
