"""Requests the protocol answers itself (serve/direct.py) against the same requests through ASGI.

The direct path must give every answer the ASGI path gives: the same status and body for valid and
invalid bodies on each protocol, the same framing (keep-alive, HTTP/1.0, pipelining), and it must
hand back what it charged. The first test drives the protocol in process to show the path is
taken at all; the others drive a real `mlcd serve` over loopback sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pandas as pd
import pytest
from starlette.testclient import TestClient
from uvicorn.config import Config
from uvicorn.server import ServerState

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.protocol import ConnectionLimits, GuardedHttpToolsProtocol
from mlcd.serve.server import load

from .servers import served

COMMIT = "feedface"


@pytest.fixture(scope="module")
def record(built_project) -> dict:
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet")
    return frame.drop(columns="diagnosis").iloc[0].to_dict()


@pytest.fixture(scope="module")
def api(built_project):
    settings = ServeSettings(bundle=built_project / "models" / "bundle", git_commit=COMMIT)
    return create_app(load(settings), settings)


def http_request(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: x", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def json_request(path: str, payload: object, *headers: str) -> bytes:
    return http_request(path, json.dumps(payload).encode(), "Content-Type: application/json", *headers)


class _Transport(asyncio.Transport):
    """What the protocol writes, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default


def test_a_plain_prediction_is_answered_in_one_write_without_an_asgi_task(api, record):
    async def scenario() -> tuple[_Transport, ServerState]:
        config = Config(app=api, proxy_headers=False, log_level="warning")
        state = ServerState()
        protocol = GuardedHttpToolsProtocol(
            config=config, server_state=state, app_state={}, limits=ConnectionLimits()
        )
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(json_request("/predict", record))
        await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport, state

    transport, state = asyncio.run(scenario())
    assert len(transport.writes) == 1, transport.writes
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"labels":' in transport.writes[0]
    assert not state.tasks and state.total_requests == 1


def test_the_protocol_leaves_to_asgi_what_it_does_not_answer_itself(api, record):
    body = json.dumps(record).encode()
    json_type = [(b"content-type", b"application/json")]
    length = [(b"content-length", str(len(body)).encode())]
    assert api.direct(b"POST", b"/predict", json_type + length) is not None
    assert api.direct(b"POST", b"/v2/models/model/infer", length) is not None
    for method, url, headers in [
        (b"POST", b"/predict?x=1", json_type + length),  # a query: the ASGI path reads the path
        (b"POST", b"/predic%74", json_type + length),  # an escape
        (b"GET", b"/predict", json_type + length),
        (b"POST", b"/predict", json_type),  # no declared length (chunked)
        (b"POST", b"/predict", [*json_type, (b"content-length", b"70000")]),  # offloaded
        (b"POST", b"/predict", [*json_type, *length, (b"transfer-encoding", b"chunked")]),
        (b"POST", b"/predict", [(b"content-type", b"text/plain"), *length]),  # its 415 is ASGI's
        (b"POST", b"/predict", json_type + length + [(b"authorization", b"a"), (b"authorization", b"b")]),
        (b"POST", b"/predict", json_type + length + [(b"upgrade", b"websocket")]),
        (b"POST", b"/feedback", json_type + length),  # no log: its 409 is ASGI's
    ]:
        assert api.direct(method, url, headers) is None, (method, url, headers)


# --- a real server


@pytest.fixture(scope="module")
def server(built_project):
    with served(built_project / "models" / "bundle", "--git-commit", COMMIT) as (port, process):
        yield port, process


def exchange(
    port: int, data: bytes, answers: int = 1, timeout: float = 10.0
) -> list[tuple[int, dict, bytes]]:
    """Send `data` on one connection and read `answers` replies: (status, headers, body) each."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        buffer = b""
        while len(replies) < answers:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, f"the connection closed after {len(replies)} replies"
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            size = int(headers["content-length"])
            while len(buffer) < size:
                buffer += sock.recv(65536)
            replies.append((int(lines[0].split()[1]), headers, buffer[:size]))
            buffer = buffer[size:]
    return replies


def without_request_id(body: bytes) -> object:
    """An answer less its request id (/predict's and MLflow's `request_id`, v2's parameters')."""
    answer = json.loads(body)
    if isinstance(answer, dict):
        answer.pop("request_id", None)
        if isinstance(answer.get("parameters"), dict):
            answer["parameters"].pop("request_id", None)
    return answer


def _v2(record: dict, **change: object) -> dict:
    tensor = {"name": "mean_radius", "shape": [1], "datatype": "FP64", "data": [record["mean_radius"]]}
    tensors = [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in record.items()
        if name != "mean_radius"
    ]
    return {"inputs": [{**tensor, **change}, *tensors]}


@pytest.mark.slow
def test_every_answer_is_the_asgi_answer(server, api, record):
    port, _ = server
    frame = {"dataframe_split": {"columns": list(record), "data": [list(record.values())]}}
    csv = (",".join(record) + "\n" + ",".join(map(str, record.values())) + "\n").encode()
    cases = [
        ("/predict", json.dumps(record).encode(), "application/json"),
        ("/predict", json.dumps([record, record]).encode(), "application/json"),
        ("/predict", b"{", "application/json"),
        ("/predict", b"", "application/json"),
        ("/predict", b'{"mean_radius": 1, "mean_radius": 2}', "application/json"),
        ("/predict", json.dumps({**record, "mean_radius": "x"}).encode(), "application/json"),
        ("/predict", json.dumps({**record, "extra": 1}).encode(), "application/json; charset=utf-8"),
        ("/predict", b"[" + b"[" * 200 + b"]" * 201, "application/json"),
        ("/invocations", json.dumps(frame).encode(), "application/json"),
        ("/invocations", csv, "text/csv"),
        ("/invocations", csv.replace(b"mean_texture", b"mean_radius"), "text/csv"),
        ("/v2/models/model/infer", json.dumps(_v2(record)).encode(), "application/json"),
        ("/v2/models/model/infer", json.dumps(_v2(record, datatype="INT8", data=[300])).encode(), ""),
        ("/v2/models/model/infer", json.dumps({"inputs": []}).encode(), "application/json"),
    ]
    with TestClient(api) as client:
        for path, body, media in cases:
            headers = [f"Content-Type: {media}"] if media else []
            [(status, _, answer)] = exchange(port, http_request(path, body, *headers))
            expected = client.post(path, content=body, headers={"content-type": media} if media else {})
            assert (status, without_request_id(answer)) == (
                expected.status_code,
                without_request_id(expected.content),
            ), (path, body[:80])


@pytest.mark.slow
def test_pipelined_requests_are_answered_in_order_on_either_path(server, record):
    port, _ = server
    ids = [f"pipelined-{n}" for n in range(4)]
    data = b"".join(
        [
            json_request("/predict", record, f"X-Request-Id: {ids[0]}"),
            json_request("/predict", record, f"X-Request-Id: {ids[1]}"),
            json_request("/predict?via=asgi", record, f"X-Request-Id: {ids[2]}"),
            json_request("/predict", record, f"X-Request-Id: {ids[3]}"),
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
    )
    replies = exchange(port, data, answers=5)
    assert [status for status, _, _ in replies] == [200] * 5
    assert [headers.get("x-request-id") for _, headers, _ in replies] == [*ids, None]
    assert json.loads(replies[-1][2]) == {"status": "ok"}


@pytest.mark.slow
def test_http_1_0_and_connection_close_get_their_answer_then_the_connection_closes(server, record):
    port, _ = server
    for request in (
        json_request("/predict", record).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        json_request("/predict", record, "Connection: close"),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):  # ends when the server closes
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nconnection: close\r\n" in received.lower()
        assert received.count(b"HTTP/1.1 ") == 1


@pytest.mark.slow
def test_a_body_in_pieces_is_answered_and_a_client_that_leaves_gives_its_bytes_back(built_project, record):
    body = json.dumps(record).encode()
    budget = 3 * len(body)
    bundle = built_project / "models" / "bundle"
    with served(bundle, "--max-inflight-bytes", str(max(budget, 1024))) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            request = json_request("/predict", record)
            for start in range(0, len(request), 97):
                sock.sendall(request[start : start + 97])
                time.sleep(0.01)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        # Clients that send most of their body and leave, many times the budget over.
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(json_request("/predict", record)[:-5])
                time.sleep(0.02)
        time.sleep(0.5)
        [(status, _, _)] = exchange(port, json_request("/predict", record))
        assert status == 200  # nothing left charged: a leaver's bytes went back


@pytest.mark.slow
def test_a_request_half_read_when_the_server_stops_is_answered_then_closed(built_project, record):
    with served(built_project / "models" / "bundle") as (port, process):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            request = json_request("/predict", record)
            sock.sendall(request[:-10])
            time.sleep(0.3)
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
            time.sleep(0.3)
            sock.sendall(request[-10:])
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        process.wait(timeout=20)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200]
    assert b"\r\nconnection: close\r\n" in received.lower()
