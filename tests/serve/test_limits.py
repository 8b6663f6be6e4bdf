"""`mlcd serve` as a real process under what a public endpoint meets: oversized headers, idle and
slow connections, clients that leave, a flood of large requests, a busy port. Loopback only,
each bounded in count and time."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from ..helpers import command_env
from .servers import served

LIMITS = ("--keepalive", "1", "--request-timeout", "2")


# Real server processes on loopback: seconds each, so outside the fast tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(built_project):
    with served(built_project / "models" / "bundle", *LIMITS) as (port, process):
        yield port, process


def raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def _trickle_a_prediction(sock: socket.socket, every: float) -> bytes:
    """A /predict head declaring 100 bytes, then its body a byte every `every` seconds until the
    server stops reading (30 bytes at most); what the server answered."""
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    try:
        for _ in range(30):
            sock.sendall(b" ")
            time.sleep(every)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return _read_all(sock)


def get(port: int, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, time.perf_counter() - started


def metric(port: int, status: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    pattern = rf'mlcd_requests_total\{{endpoint="/predict",method="POST",status="{status}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_oversized_headers_get_431_and_are_not_buffered(server):
    port, _ = server
    answer = raw(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert b"headers are over the limit" in answer
    assert get(port, "/ready")[0] == 200


def test_an_idle_connection_is_closed(server):
    port, _ = server
    started = time.monotonic()
    assert raw(port, b"", wait=10) == b""  # the server closed it (keep-alive 1 s)
    assert time.monotonic() - started < 5


def test_a_body_sent_a_byte_at_a_time_gets_408(server):
    port, _ = server
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answer = _trickle_a_prediction(sock, every=0.3)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < 8
    assert get(port, "/ready")[0] == 200


def test_a_slow_request_after_a_fast_one_gets_its_whole_time_then_408(server):
    """The connection's one deadline timer, armed by the first request, is re-armed for the second:
    the second gets the whole --request-timeout (2 s) from its own first byte, then 408."""
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b'{"status":"ok"}'):  # head and body may arrive apart: read both
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {reply[:80]!r}"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:80]
        time.sleep(0.7)  # within the 1 s keep-alive
        began = time.monotonic()
        answer = _trickle_a_prediction(sock, every=0.2)
        waited = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert 1.9 <= waited < 6, waited


def test_a_client_that_leaves_mid_body_is_counted_as_499_not_500(built_project):
    with served(built_project / "models" / "bundle", *LIMITS) as (port, process):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"mean_radius": '
            )
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while metric(port, "499") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metric(port, "499") == 1
        assert metric(port, "500") == 0
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "Traceback" not in stderr and "ClientDisconnect" not in stderr


def test_health_answers_within_a_second_under_a_flood_of_large_requests(built_project):
    """16 clients send 2.9 MB bodies of unknown keys for 8 s; the liveness probe's timeout is 1 s."""
    flood = json.dumps({f"key_{i:07d}": 1 for i in range(150_000)}).encode()
    statuses: list[int] = []
    stop = time.monotonic() + 8

    def abuse(port: int) -> None:
        while time.monotonic() < stop:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict", data=flood, headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)

    with served(built_project / "models" / "bundle") as (port, process):
        threads = [threading.Thread(target=abuse, args=(port,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        slowest = 0.0
        while time.monotonic() < stop:
            for path in ("/health", "/ready"):
                status, seconds = get(port, path)
                assert status == 200
                slowest = max(slowest, seconds)
            time.sleep(0.1)
        for thread in threads:
            thread.join(timeout=60)
        peak_kib = int(
            re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{process.pid}/status").read_text()).group(1)
        )
    print(f"slowest probe {slowest:.3f} s, peak {peak_kib / 1024:.0f} MiB, {len(statuses)} requests")
    assert slowest < 1.0, f"/health or /ready took {slowest:.2f} s"
    assert set(statuses) <= {422, 503} and 422 in statuses
    assert peak_kib < 400 * 1024, f"peak memory {peak_kib / 1024:.0f} MiB"  # README: "Limits"


def test_a_busy_port_is_one_error_line(server, built_project):
    port, _ = server
    done = subprocess.run(
        ["mlcd", "serve", "--bundle", str(built_project / "models" / "bundle"), "--port", str(port)],
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"error: 127.0.0.1:{port} is in use by another process: stop it, or choose another with --port"
    )
    assert "serving" not in done.stdout + done.stderr  # nothing announced before the checks pass


@pytest.mark.parametrize("path", ["/predict", "/health", "/nowhere"])
def test_a_websocket_upgrade_is_refused_with_a_4xx_on_any_path(server, path):
    port, process = server
    upgrade = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()
    answer = raw(port, upgrade)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]
    assert get(port, "/health")[0] == 200 and process.poll() is None


def refused(port: int, reason: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = re.search(rf'mlcd_refused_requests_total\{{reason="{reason}"\}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_a_client_that_never_reads_its_answer_is_dropped(built_project):
    """Issue 28: clients that post and never read pinned their replies' memory and connections."""
    import pandas as pd

    record = pd.read_parquet(built_project / "data" / "processed" / "test.parquet").iloc[0]
    # A reply of 6 MB: more than loopback's kernel buffers (up to 4 MiB here) take for a client that
    # does not read, so the rest waits in the server, which is what the write timeout bounds.
    body = json.dumps([record.drop("diagnosis").to_dict()] * 80_000).encode()
    big = str(128 * 1024 * 1024)
    args = (
        "--write-timeout",
        "1",
        "--max-batch",
        "100000",
        "--max-body-bytes",
        big,
        "--max-inflight-bytes",
        big,
    )
    with served(built_project / "models" / "bundle", *args) as (port, process):
        head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}"
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
            sock.connect(("127.0.0.1", port))
            sock.sendall(head.encode() + b"\r\n\r\n" + body)
            deadline = time.monotonic() + 15
            while refused(port, "write_timeout") < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert refused(port, "write_timeout") == 1
            sock.settimeout(5)
            received = _read_all(sock)  # the connection was dropped: the reply stops short
            length = int(re.search(rb"content-length: (\d+)", received).group(1))
            assert len(received.split(b"\r\n\r\n", 1)[1]) < length
        assert get(port, "/health")[0] == 200 and process.poll() is None


def test_connections_past_the_cap_get_503_and_probes_keep_answering(built_project):
    """Issue 28: 21,000 one-byte connections exhausted descriptors and /health got empty replies."""
    args = ("--max-connections", "40", "--keepalive", "30", "--request-timeout", "30")
    with served(built_project / "models" / "bundle", *args) as (port, process):
        holders = []
        refused_before = refused(port, "too_many_connections")
        try:
            for _ in range(32):  # up to the probe reserve (40 // 5 = 8 kept for probes)
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"G")
                holders.append(sock)
            time.sleep(0.3)
            crowded = raw(port, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            assert crowded.startswith(b"HTTP/1.1 503"), crowded[:200]
            assert get(port, "/health")[0] == 200 and get(port, "/ready")[0] == 200
            late = socket.create_connection(("127.0.0.1", port), timeout=5)
            late.sendall(b"G")  # in the reserve, and not a probe: refused and closed at once
            assert _read_all(late).startswith(b"HTTP/1.1 503")
            for _ in range(12):  # silent ones fill the reserve, then the cap: refused at connect
                holders.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(0.3)
            full = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert full.startswith(b"HTTP/1.1 503"), full[:200]
        finally:
            for sock in holders:
                sock.close()
        time.sleep(0.5)
        assert refused(port, "too_many_connections") >= refused_before + 2
        assert get(port, "/version")[0] == 200 and process.poll() is None
