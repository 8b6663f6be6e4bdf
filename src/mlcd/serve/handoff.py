"""What the API answered, handed off the request path to the closed loop's parts.

The request path makes one tuple of each answered batch and appends it to a queue: a lock held
for an append; copied are the batch's numbers and the model's output matrix (as bytes) and the
answers' list (as a tuple). The tuple never holds the request's own lists and dicts, nor arrays,
nor strings made for it (a model's labels are one string per class, BundleModel._labels): kept
past their request (up to 50 ms here, half a second in the log's queue, up to a window in
the drift window's), the lists and dicts made the main thread's garbage collector and allocator
slower by about 7 µs a request, arrays by about 3 (benchmarks, 2026-12-06; `served` says why).
Bytes, strings and tuples cost it about 2 µs together.
A thread of its own takes the queue every `interval_seconds` and hands it, in order, to each
taker: the prediction log, the answers /feedback matches labels with, the drift window.
/feedback hands the queue on itself before it looks an answer up, so a label sent right after
its answer matches.

Why (issue 25): three locked calls a request, each keeping the request's objects until the
log's next flush, half a second later, cost about 12 µs of a 45 µs /predict; one append and a
hand-off every 50 ms keep the request path to one call and what is held to a few hundred requests.
Memory is bounded: past `max_records` queued records a batch is dropped and counted.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from mlcd.serve.payload import Batch

INTERVAL_SECONDS = 0.05


# One answered batch: (time, request id, endpoint, records, numbers, texts, outputs, values): the
# batch's float32 matrix as bytes and its text columns as validated, each record's answer (its
# label, or its predicted value) as the client got it, and the model's output matrix as its own
# bytes (float32, or float64 for a model that answers in double; BundleModel.answer). A plain tuple,
# which the takers unpack: built in 0.17 µs where a NamedTuple took 0.72 and a frozen dataclass 1.9,
# and it is built on every request's path.
Served = tuple[float, str, str, int, bytes, dict[str, list[str]], tuple[Any, ...], bytes]

# The texts of a model without text features: one empty dict for every answer rather than the
# batch's own, which would be kept past its request (the takers only read it).
_NO_TEXTS: dict[str, list[str]] = {}


def served(
    request_id: str, endpoint: str, batch: Batch, result: dict[str, Any], values: np.ndarray, when: float
) -> Served:
    found = result["labels"] if "labels" in result else result["predictions"]
    # Both matrices are kept as bytes, not arrays. A numpy array kept past its request and freed on
    # the hand-off's thread cost the request path about 3 µs (one process, one app, the queue
    # handed to no taker: 45 µs a request with a copy of the output matrix kept, 42-43 with its
    # bytes, 42 with neither; 2026-12-06): numpy's small-array cache and the C allocator's
    # per-thread cache refill on the thread that frees, so the request path's next arrays took the
    # slow path. Bytes come from Python's own allocator, which any thread frees alike. The model's
    # answers keep their own type: a cast to float64 here cost the main thread 4-6 µs of user time
    # a request (/proc per thread, the old code beside the new; perf saw 0.6 µs in numpy's cast
    # itself, 2026-12-06); `values` widens them for a whole hand-off at once.
    packed = batch.numbers.tobytes()
    answered = values.tobytes()
    texts = batch.texts or _NO_TEXTS
    return (when, request_id, endpoint, len(batch.numbers), packed, texts, tuple(found), answered)


def records(answer: Served) -> int:
    return answer[3]


def numbers(answers: Sequence[Served], width: int) -> np.ndarray:
    """The answers' float32 input rows, in order, as one matrix of `width` columns."""
    rows = sum(map(records, answers))
    return np.frombuffer(_joined(answers, 4), dtype=np.float32).reshape(rows, width)


def values(answers: Sequence[Served], width: int) -> np.ndarray:
    """The model's outputs for the answers, in order, as one float64 matrix of `width` columns
    (exact: a float32 widens without loss)."""
    rows = sum(map(records, answers))
    joined = _joined(answers, 7)
    kind = np.float32 if len(joined) == rows * width * 4 else np.float64  # the model's own type
    return np.frombuffer(joined, dtype=kind).reshape(rows, width).astype(np.float64)


def _joined(answers: Sequence[Served], slot: Literal[4, 7]) -> bytes:
    return answers[0][slot] if len(answers) == 1 else b"".join(answer[slot] for answer in answers)


Taker = Callable[[list[Served]], None]


class Handoff:
    def __init__(
        self,
        takers: Sequence[Taker],
        max_records: int,
        dropped: Callable[[int], None],
        interval_seconds: float | None = None,
    ) -> None:
        self.takers, self.max_records, self.dropped = takers, max_records, dropped
        self.interval_seconds = INTERVAL_SECONDS if interval_seconds is None else interval_seconds
        self._queue: deque[Served] = deque()
        self._records = 0
        self._lock = threading.Lock()  # the queue: the request path waits only on this
        self._handing = threading.Lock()  # one hand-off at a time, so the takers see answers in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcd-handoff", daemon=True)
        self._thread.start()

    def put(
        self, request_id: str, endpoint: str, batch: Batch, result: dict[str, Any], values: np.ndarray
    ) -> None:
        """The request path: the answer queued, or dropped and counted when the queue is full."""
        answer = served(request_id, endpoint, batch, result, values, time.time())
        rows = records(answer)
        with self._lock:
            if self._records + rows <= self.max_records:
                self._queue.append(answer)
                self._records += rows
                return
        self.dropped(rows)

    def hand_on(self) -> None:
        """Everything queued, to every taker, oldest first."""
        with self._handing:
            with self._lock:
                queue, self._queue, self._records = self._queue, deque(), 0
            if not queue:
                return
            served = list(queue)
            for take in self.takers:
                try:
                    take(served)
                except Exception as exc:  # a bug in one part must not stop the others, nor the server
                    print(f"mlcd: handoff: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """The server stops: what is queued is handed on before the takers close."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval_seconds)
            self.hand_on()
            if stopping:
                return
