"""The prediction log: every answer the API gave, one row per record: request id, its row, time,
endpoint, model, the validated inputs as the model received them, and the outputs.

Handed over off the request path (serve/handoff.py), written by a RotatingLog
(serve/rotating_log.py: bounded, kill -9 safe).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcd.serve import handoff, prometheus
from mlcd.serve.handoff import Served, records
from mlcd.serve.model import Layout
from mlcd.serve.rotating_log import Counters, LogSettings, RotatingLog, closed_files

if TYPE_CHECKING:
    import pyarrow as pa

PREFIX = "predictions-"
# Records per Arrow table the writer makes: fewer pay a table's fixed cost (about 0.17 ms) more
# often, more outgrow the CPU's cache (µs a record at 256, 1,024 and 4,000: 1.1, 0.69, 1.08).
TABLE_RECORDS = 1024


class PredictionLog:
    """A taker of the hand-off (serve/handoff.py): its answers wait for the log's writer, which
    turns them into Arrow tables of about TABLE_RECORDS records on its own thread at each flush
    (every 0.5 s), where a table a hand-off (a few hundred records at 8,000 a second) paid a
    table's fixed cost four times as often. The waiting answers hold bytes, strings and tuples,
    never arrays (serve/handoff.py says what each costs the request path)."""

    def __init__(
        self,
        settings: LogSettings,
        layout: Layout,
        model_hash: str,
        git_commit: str | None,
        classes: list[str] | None,
    ) -> None:
        import pyarrow as pa

        self.layout, self.classes = layout, classes
        self.sample = settings.sample
        self.schema = log_schema(layout, classes)
        self._matrix_columns = matrix_columns(layout)
        self._time = self.schema.field("time").type
        self._model_hash = pa.scalar(model_hash, pa.string())
        self._git_commit = pa.scalar(git_commit, pa.string())
        self.log: RotatingLog[list[Served]] = RotatingLog(
            settings,
            PREFIX,
            self.schema,
            self._tables,
            Counters(
                prometheus.LOG_RECORDS,
                prometheus.LOG_DROPPED,
                lambda outcome: prometheus.LOG_FILES_SHIPPED.labels("predictions", outcome),
            ),
        )

    def take(self, served: list[Served]) -> None:
        """The hand-off's thread: the sampled answers (whole requests) queued for the writer."""
        if self.sample < 1.0:
            served = [answer for answer in served if random.random() < self.sample]
        if served:
            self.log.put(served, sum(map(records, served)))

    def close(self) -> None:
        self.log.close()

    def _tables(self, taken: list[list[Served]]) -> pa.Table:
        """What the hand-offs gave since the last flush, as tables of about TABLE_RECORDS records."""
        import pyarrow as pa

        tables, part, rows = [], [], 0
        for answers in taken:
            part += answers
            rows += sum(map(records, answers))
            if rows >= TABLE_RECORDS:
                tables.append(self._table(part))
                part, rows = [], 0
        if part:
            tables.append(self._table(part))
        return pa.concat_tables(tables)

    def _table(self, answers: list[Served]) -> pa.Table:
        """Answers as a table of `log_schema`, transposed by zip, each column made as its Arrow type
        (no schema inference); the matrix's columns are one Arrow array, sliced."""
        import pyarrow as pa

        times, request_ids, endpoints, rows, _, texts, outputs, _ = zip(*answers, strict=True)
        counts = np.array(rows, dtype=np.int64)
        total = int(counts.sum())

        def each_record(values: tuple[Any, ...]) -> Any:  # a request's value on each of its records
            return values if total == len(answers) else np.repeat(np.array(values, dtype=object), counts)

        arrays = [
            pa.array(each_record(request_ids), pa.string()),
            pa.array((np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)),
            pa.array((np.array(each_record(times), dtype=np.float64) * 1e6).astype("datetime64[us]")).cast(
                self._time
            ),
            pa.array(each_record(endpoints), pa.string()),
            pa.repeat(self._model_hash, total),
            pa.repeat(self._git_commit, total),
        ]
        # The float32 rows transposed into one float64 array (NaN, a gap, as null), sliced by column.
        width = len(self._matrix_columns)
        inputs = pa.array(handoff.numbers(answers, width).T.astype(np.float64).ravel(), from_pandas=True)
        arrays += [inputs.slice(index * total, total) for index in range(width)]
        for feature in self.layout.features:
            if feature.is_text:
                arrays.append(pa.array([v for batch in texts for v in batch[feature.name]], pa.string()))
        answered = [v for output in outputs for v in output]
        if self.classes is None:
            arrays.append(pa.array(answered, pa.float64()))
        else:
            arrays.append(pa.array(answered, pa.string()))
            # The model's float32 probabilities, as the answers' JSON carried them (exactly, in float64).
            probabilities = pa.array(handoff.values(answers, len(self.classes)).T.ravel())
            arrays += [probabilities.slice(index * total, total) for index in range(len(self.classes))]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def matrix_columns(layout: Layout) -> list[str]:
    """The float matrix's columns by name: a number's own, a datetime's as name.part."""
    return [
        f"{feature.name}.{part}" if feature.is_datetime else feature.name
        for feature in layout.features
        for part in (feature.parts or ("",) if feature.width else ())
    ]


def log_schema(layout: Layout, classes: list[str] | None) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field("request_id", pa.string()),
        pa.field("row", pa.int32()),
        pa.field("time", pa.timestamp("us", tz="UTC")),
        pa.field("endpoint", pa.string()),
        pa.field("model_hash", pa.string()),
        pa.field("git_commit", pa.string()),
        *(pa.field(f"input.{name}", pa.float64()) for name in matrix_columns(layout)),
        *(pa.field(f"input.{f.name}", pa.string()) for f in layout.features if f.is_text),
    ]
    if classes is None:
        fields.append(pa.field("output.value", pa.float64()))
    else:
        fields.append(pa.field("output.label", pa.string()))
        fields += [pa.field(f"output.probability.{name}", pa.float64()) for name in classes]
    return pa.schema(fields)


def logged_files(directory: Path) -> list[Path]:
    """The prediction log's closed (complete) files."""
    return closed_files(directory, PREFIX)
