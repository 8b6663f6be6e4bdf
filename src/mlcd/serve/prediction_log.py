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

from mlcd.serve import prometheus
from mlcd.serve.handoff import Served
from mlcd.serve.model import Layout
from mlcd.serve.rotating_log import Counters, LogSettings, RotatingLog, closed_files

if TYPE_CHECKING:
    import pyarrow as pa

PREFIX = "predictions-"


class PredictionLog:
    """A taker of the hand-off (serve/handoff.py): each hand-off's answers become one Arrow table
    there, so the requests' objects are let go within 50 ms, and the writer gets columns."""

    def __init__(
        self,
        settings: LogSettings,
        layout: Layout,
        model_hash: str,
        git_commit: str | None,
        classes: list[str] | None,
    ) -> None:
        self.layout, self.model_hash, self.git_commit, self.classes = layout, model_hash, git_commit, classes
        self.sample = settings.sample
        self.schema = log_schema(layout, classes)
        self.log: RotatingLog[pa.Table] = RotatingLog(
            settings,
            PREFIX,
            self.schema,
            _concatenated,
            Counters(
                prometheus.LOG_RECORDS,
                prometheus.LOG_DROPPED,
                lambda outcome: prometheus.LOG_FILES_SHIPPED.labels("predictions", outcome),
            ),
        )

    def take(self, served: list[Served]) -> None:
        """The hand-off's thread: the sampled answers (whole requests) queued for the writer as a table."""
        import pyarrow as pa

        if self.sample < 1.0:
            served = [answer for answer in served if random.random() < self.sample]
        if served:
            table = pa.Table.from_pydict(self._columns(served), schema=self.schema)
            self.log.put(table, table.num_rows)

    def close(self) -> None:
        self.log.close()

    def _columns(self, answers: list[Served]) -> dict[str, Any]:
        """Answers as columns of `log_schema`: transposed by zip, the numbers as one matrix."""
        import pyarrow as pa

        times, request_ids, endpoints, rows, numbers, texts, outputs, values = zip(*answers, strict=True)
        counts = np.array(rows, dtype=np.int64)
        total = int(counts.sum())

        def each_record(values: tuple[Any, ...]) -> Any:  # a request's value on each of its records
            return values if total == len(answers) else np.repeat(np.array(values, dtype=object), counts)

        columns: dict[str, Any] = {
            "request_id": each_record(request_ids),
            "row": (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32),
            "time": (np.array(each_record(times), dtype=np.float64) * 1e6).astype("datetime64[us]"),
            "endpoint": each_record(endpoints),
            "model_hash": pa.repeat(pa.scalar(self.model_hash, pa.string()), total),
            "git_commit": pa.repeat(pa.scalar(self.git_commit, pa.string()), total),
        }
        # Column by column from a transposed copy: each column contiguous, NaN (a gap) as null.
        matrix = np.concatenate(numbers).astype(np.float64).T.copy()
        for index, name in enumerate(matrix_columns(self.layout)):
            columns[f"input.{name}"] = pa.array(matrix[index], from_pandas=True)
        for feature in self.layout.features:
            if feature.is_text:
                columns[f"input.{feature.name}"] = [v for batch in texts for v in batch[feature.name]]
        answered = [v for output in outputs for v in output]
        if self.classes is None:
            columns["output.value"] = answered
        else:
            columns["output.label"] = answered
            # The model's float32 probabilities, as the answers' JSON carried them (exactly, in float64).
            probabilities = np.concatenate(values).reshape(total, -1).astype(np.float64).T.copy()
            for index, name in enumerate(self.classes):
                columns[f"output.probability.{name}"] = probabilities[index]
        return columns


def _concatenated(tables: list[pa.Table]) -> pa.Table:
    import pyarrow as pa

    return pa.concat_tables(tables)


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
