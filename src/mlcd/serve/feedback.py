"""Delayed labels: POST /feedback joins true labels (or values) to the answers this process gave,
keeps the model's live performance over the last labelled records as Prometheus gauges, and
appends every label to the feedback log beside the prediction log.

Only answers this process remembers can be matched (the last RECENT_RECORDS records, by request
id): with several workers a label reaches one of them, so each worker's gauges cover the labels
it could match, and the logs (which hold every answer and every label) are the whole record.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcd.serve import prometheus
from mlcd.serve.asgi import PayloadError, short
from mlcd.serve.handoff import Served, records
from mlcd.serve.rotating_log import Counters, LogSettings, RotatingLog

if TYPE_CHECKING:
    import pyarrow as pa

PREFIX = "feedback-"
RECENT_RECORDS = 100_000
WINDOW = 1_000
_ID_CHARS = 128


@dataclass(frozen=True)
class Label:
    request_id: str
    row: int
    truth: str | float
    predicted: str | float | None  # None: no answer with that id and row is remembered here


class RecentAnswers:
    """The outputs of the last `capacity` answered records, by request id (oldest forgotten first).

    A taker of the hand-off (serve/handoff.py): each hand-off's answers are one dict, and the
    dicts are kept in order; the oldest goes when the rest still hold `capacity` records. Looking
    an id up asks the newest dict first, so a client that reuses an id gets its newest answer.
    One dict a hand-off, built by a comprehension, costs about 0.2 µs an answer where a single
    OrderedDict cost 1.5 (a move to the end and a pop of the oldest per answer). Its outputs are
    tuples, which the garbage collector stops tracking: 100,000 lists would be walked by every
    full collection."""

    def __init__(self, capacity: int = RECENT_RECORDS) -> None:
        self.capacity = capacity
        self._parts: deque[tuple[dict[str, tuple[Any, ...]], int]] = deque()  # (outputs by id, records)
        self._records = 0
        self._lock = threading.Lock()

    def take(self, served: list[Served]) -> None:
        answers = {answer[1]: answer[6] for answer in served}
        count = sum(map(records, served))
        with self._lock:
            self._parts.append((answers, count))
            self._records += count
            while self._records - self._parts[0][1] >= self.capacity:
                self._records -= self._parts.popleft()[1]

    def get(self, request_id: str, row: int) -> Any | None:
        with self._lock:
            parts = list(self._parts)
        for answers, _ in reversed(parts):
            found = answers.get(request_id)
            if found is not None:
                return found[row] if row < len(found) else None
        return None


class LivePerformance:
    """Metrics over the last `window` matched labels, published as mlcd_live_performance{metric}."""

    def __init__(self, classes: list[str] | None, positive: str | None, window: int = WINDOW) -> None:
        self.classes, self.positive = classes, positive
        self._pairs: deque[tuple[Any, Any]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, labels: list[Label]) -> dict[str, float]:
        with self._lock:
            self._pairs.extend((x.predicted, x.truth) for x in labels if x.predicted is not None)
            pairs = list(self._pairs)
        values = self.measure(pairs)
        prometheus.LIVE_LABELLED.set(len(pairs))
        for metric, value in values.items():
            prometheus.LIVE_PERFORMANCE.labels(metric).set(value)
        return values

    def measure(self, pairs: list[tuple[Any, Any]]) -> dict[str, float]:
        if not pairs:
            return {}
        predicted, truth = (np.array(side) for side in zip(*pairs, strict=True))
        if self.classes is None:
            error = predicted.astype(float) - truth.astype(float)
            values = {"mae": float(np.mean(np.abs(error)))}
            spread = float(np.sum((truth - truth.mean()) ** 2))
            if spread > 0:
                values["r2"] = 1.0 - float(np.sum(error**2)) / spread
            return values
        values = {"accuracy": float(np.mean(predicted == truth))}
        if self.positive is not None and len(self.classes) == 2:
            values["f1"] = _f1(predicted, truth, self.positive)
        else:
            labels = sorted(set(truth) | set(predicted))
            values["macro_f1"] = float(np.mean([_f1(predicted, truth, label) for label in labels]))
        return values


# A live metric and the evaluate metric it is held to (multiclass F1 is evaluate's macro F1).
_EVALUATED_AS = {"accuracy": "accuracy", "f1": "f1", "macro_f1": "f1", "r2": "r2"}


def performance_floors(metrics: dict[str, float | None], gate: Any) -> dict[str, float]:
    """Per live metric, the lowest value the gate would pass: the test score the bundle was
    released with, less the gate's max_drop for it (mlcd_live_performance_floor)."""
    max_drop = gate.get("max_drop", {}) if isinstance(gate, dict) else {}
    floors = {}
    for live, evaluated in _EVALUATED_AS.items():
        score, drop = metrics.get(evaluated), max_drop.get(evaluated)
        if isinstance(score, int | float) and isinstance(drop, int | float):
            floors[live] = float(score) - float(drop)
    return floors


def _f1(predicted: np.ndarray, truth: np.ndarray, label: Any) -> float:
    hits = float(np.sum((predicted == label) & (truth == label)))
    claimed, actual = float(np.sum(predicted == label)), float(np.sum(truth == label))
    return 0.0 if claimed + actual == 0 else 2 * hits / (claimed + actual)


def parse_labels(payload: Any, classes: list[str] | None, most: int) -> list[tuple[str, int, str | float]]:
    """(request id, row, label or value) for each record of a /feedback body; a 422 naming the
    record and the field for anything else."""
    records = payload if isinstance(payload, list) else [payload]
    if not records or len(records) > most:
        raise PayloadError(422, f"send 1 to {most:,} feedback records (got {len(records):,})")
    field = "value" if classes is None else "label"
    parsed: list[tuple[str, int, str | float]] = []
    for index, record in enumerate(records):
        where = f"record {index}" if isinstance(payload, list) else "the record"
        if not isinstance(record, dict):
            raise PayloadError(422, f'{where}: send {{"request_id": ..., "{field}": ...}}')
        unknown = set(record) - {"request_id", "row", field}
        if unknown:
            raise PayloadError(
                422,
                f"{where}: unknown field {short(sorted(unknown)[0])}; send request_id, "
                f"row (for a batch; default 0) and {field}",
            )
        request_id, row, truth = record.get("request_id"), record.get("row", 0), record.get(field)
        if not isinstance(request_id, str) or not 0 < len(request_id) <= _ID_CHARS:
            raise PayloadError(422, f"{where}: request_id must be the answer's request id (a string)")
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise PayloadError(422, f"{where}: row must be a record's place in its request (0, 1, ...)")
        if classes is None:
            if isinstance(truth, bool) or not isinstance(truth, int | float) or not math.isfinite(truth):
                raise PayloadError(422, f"{where}: value must be a finite number (the true target)")
            parsed.append((request_id, row, float(truth)))
        else:
            if not isinstance(truth, str) or truth not in classes:
                raise PayloadError(422, f"{where}: label must be one of the model's classes {classes}")
            parsed.append((request_id, row, truth))
    return parsed


class FeedbackLog:
    def __init__(self, settings: LogSettings, classes: list[str] | None) -> None:
        self.classes = classes
        self.schema = feedback_schema(classes)
        self.log: RotatingLog[tuple[float, list[Label]]] = RotatingLog(
            settings,
            PREFIX,
            self.schema,
            self._table,
            Counters(
                prometheus.FEEDBACK_LOG_RECORDS,
                prometheus.FEEDBACK_LOG_DROPPED,
                lambda outcome: prometheus.LOG_FILES_SHIPPED.labels("feedback", outcome),
            ),
        )

    def record(self, labels: list[Label]) -> None:
        self.log.put((time.time(), labels), len(labels))

    def close(self) -> None:
        self.log.close()

    def _table(self, entries: list[tuple[float, list[Label]]]) -> pa.Table:
        import pyarrow as pa

        return pa.Table.from_pydict(self._columns(entries), schema=self.schema)

    def _columns(self, entries: list[tuple[float, list[Label]]]) -> dict[str, Any]:
        labels = [label for _, batch in entries for label in batch]
        times = [at for at, batch in entries for _ in batch]
        truth, predicted = _truth_columns(self.classes)
        return {
            "request_id": [x.request_id for x in labels],
            "row": [x.row for x in labels],
            "time": (np.array(times, dtype=np.float64) * 1e6).astype("datetime64[us]"),
            truth: [x.truth for x in labels],
            predicted: [x.predicted for x in labels],
            "matched": [x.predicted is not None for x in labels],
        }


def feedback_schema(classes: list[str] | None) -> pa.Schema:
    import pyarrow as pa

    kind = pa.float64() if classes is None else pa.string()
    truth, predicted = _truth_columns(classes)
    return pa.schema(
        [
            pa.field("request_id", pa.string()),
            pa.field("row", pa.int32()),
            pa.field("time", pa.timestamp("us", tz="UTC")),
            pa.field(truth, kind),
            pa.field(predicted, kind),
            pa.field("matched", pa.bool_()),
        ]
    )


def _truth_columns(classes: list[str] | None) -> tuple[str, str]:
    """The feedback log's names for the true target and the model's answer."""
    return ("value", "predicted_value") if classes is None else ("label", "predicted_label")
