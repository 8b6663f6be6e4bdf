"""The shadow's judge on loopback: it answers the mirror at once, forwards to the candidate, counts
a candidate that hangs as errors and drops what is still queued at the end rather than waiting for
it; answers are read alike from every protocol and compared with the tolerance."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlcd.deploy.shadow import _agree
from mlcd.deploy.shadow_judge import Judge, answers_in


@pytest.fixture
def candidate() -> Iterator[tuple[int, threading.Event]]:
    """A candidate that answers {"labels": ["a"]}, or hangs while the event is set."""
    hang = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            if hang.is_set():
                time.sleep(2)
            body = json.dumps({"labels": ["a"], "request_id": self.headers.get("x-request-id")}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hang
    server.shutdown()
    server.server_close()


def _mirror(port: int, n: int) -> None:
    for i in range(n):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            b'[{"x": 1}]',
            {"content-type": "application/json", "x-request-id": f"r{i}"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 204  # the mirror is answered at once, whatever the candidate does


def test_answers_are_forwarded_and_kept_up_to_the_limit(candidate):
    port, _ = candidate
    # A generous timeout: nothing hangs here, and on a loaded machine one forward took over a second.
    judge = Judge(port, timeout=10.0, keep=5)
    with judge.serve() as server:
        _mirror(server.port, 20)
        deadline = time.monotonic() + 10
        while judge.requests < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert (judge.requests, judge.errors, judge.dropped, len(judge.kept)) == (20, 0, 0, 5)
    assert judge.kept[0].answer["request_id"].startswith("r")  # the client's request id went on
    assert judge.kept[0].headers["content-type"] == "application/json"


def test_a_hanging_candidate_counts_as_errors_and_the_end_does_not_wait_for_the_queue(candidate):
    port, hang = candidate
    hang.set()
    judge = Judge(port, timeout=0.2, keep=5)
    with judge.serve() as server:
        _mirror(server.port, 100)
    assert judge.requests + judge.dropped == 100  # every mirrored request accounted for
    assert judge.errors == judge.requests and judge.kept == []
    assert judge.dropped > 0  # the queue was dropped at the end, not forwarded into 0.2 s timeouts


@pytest.mark.parametrize(
    "path, answer, found",
    [
        ("/predict", {"labels": ["a", "b"], "probabilities": []}, ["a", "b"]),
        ("/predict", {"predictions": [1.5]}, [1.5]),
        ("/invocations", {"predictions": ["a"]}, ["a"]),
        (
            "/v2/models/m/infer",
            {"outputs": [{"name": "probabilities"}, {"name": "label", "data": ["b"]}]},
            ["b"],
        ),
        ("/v2/models/m/infer", {"outputs": [{"name": "prediction", "data": [2.0]}]}, [2.0]),
        ("/predict", {"detail": "refused"}, None),
        ("/predict", None, None),
    ],
)
def test_answers_are_read_alike_from_every_protocol(path, answer, found):
    assert answers_in(path, answer) == found


def test_agreement_is_equal_classes_or_values_within_the_tolerance():
    assert _agree("a", "a", 0.0) and not _agree("a", "b", 0.0)
    assert _agree(1.0, 1.05, 0.1) and not _agree(1.0, 1.2, 0.1)
    assert not _agree(float("nan"), 1.0, 10.0)
