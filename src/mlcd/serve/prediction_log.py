"""The prediction log: every answer the API gave (request id, time, model, validated inputs, outputs),
written to Parquet files off the request path.

The request path only appends a reference to a bounded list under a lock; when the list holds
`max_queued_records` the records are dropped and counted (mlcd_prediction_log_dropped_total),
so a slow or full disk never slows an answer. A background thread turns the list into columns
every `flush_seconds` and appends them to the open file, an Arrow IPC stream: each flush is whole
batches that survive a kill -9 (a truncated stream reads up to its last whole batch). A file is
closed by size or when the UTC hour changes: converted to Parquet, written beside it under a
temporary name, synced and renamed, so a `.parquet` file in the directory is always complete.
A stream left by a killed process (no lock held on it) is converted when the next log starts.
Files are created 0600: they hold what clients sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from mlcd.errors import ServeError
from mlcd.serve import prometheus
from mlcd.serve.model import Layout
from mlcd.serve.payload import Batch

if TYPE_CHECKING:
    import pyarrow as pa

FILE_PREFIX = "predictions-"
CLOSED_SUFFIX = ".parquet"  # what readers read
OPEN_SUFFIX = ".arrows"  # the file being written: an Arrow IPC stream
PRIVATE = 0o600


@dataclass(frozen=True)
class LogSettings:
    directory: Path
    sample: float = 1.0  # share of requests logged (whole requests: a batch is logged or not)
    max_file_bytes: int = 32 * 1024 * 1024
    # Records waiting for the writer; past it, new ones are dropped (memory stays bounded).
    max_queued_records: int = 50_000
    flush_seconds: float = 0.5


@dataclass(frozen=True)
class _Entry:
    time: float
    request_id: str
    endpoint: str
    rows: int
    batch: Batch
    result: dict[str, Any]


def _private_file(path: Path) -> IO[bytes]:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE), "wb")


class PredictionLog:
    def __init__(
        self,
        settings: LogSettings,
        layout: Layout,
        model_hash: str,
        git_commit: str | None,
        classes: list[str] | None,
    ) -> None:
        import pyarrow as pa

        self.settings = settings
        self.layout, self.model_hash, self.git_commit, self.classes = layout, model_hash, git_commit, classes
        self.schema = log_schema(layout, classes)
        settings.directory.mkdir(parents=True, exist_ok=True)
        recover(settings.directory)
        self._lock = threading.Lock()
        self._pending: list[_Entry] = []
        self._queued = 0
        self._stream: Any = None  # pa.ipc.RecordBatchStreamWriter of the open file
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._hour = ""
        self._serial = 0
        self._warned = 0.0
        self._pa = pa
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcd-prediction-log", daemon=True)
        self._thread.start()

    # --- the request path

    def record(self, request_id: str, endpoint: str, batch: Batch, result: dict[str, Any]) -> None:
        sample = self.settings.sample
        if sample < 1.0 and random.random() >= sample:
            return
        rows = len(batch.numbers)
        with self._lock:
            room = self._queued + rows <= self.settings.max_queued_records
            if room:
                self._pending.append(_Entry(time.time(), request_id, endpoint, rows, batch, result))
                self._queued += rows
        if not room:
            prometheus.LOG_DROPPED.labels("queue_full").inc(rows)

    # --- the writer thread

    def close(self) -> None:
        """Write what is queued and close the open file as Parquet (the server's shutdown)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.settings.flush_seconds)
            self._flush()
            if stopping:
                self._close_file()
                return

    def _flush(self) -> None:
        with self._lock:
            entries, self._pending, self._queued = self._pending, [], 0
        hour = datetime.now(UTC).strftime("%Y%m%dT%H")
        full = self._file is not None and self._file.tell() >= self.settings.max_file_bytes
        if self._file is not None and (hour != self._hour or full):
            self._close_file()
        if not entries:
            return
        rows = sum(entry.rows for entry in entries)
        try:
            if self._file is None:
                self._open_file(hour)
            self._stream.write_table(self._table(entries))
            assert self._file is not None
            self._file.flush()  # to the OS: a kill -9 of this process keeps it
            prometheus.LOG_RECORDS.inc(rows)
        except OSError as exc:
            prometheus.LOG_DROPPED.labels("write_error").inc(rows)
            self._warn(f"{rows} records dropped: {exc.strerror or exc}")
            self._abandon_file()

    def _open_file(self, hour: str) -> None:
        self._serial += 1
        path = self.settings.directory / f"{FILE_PREFIX}{hour}-{os.getpid()}-{self._serial:05d}{OPEN_SUFFIX}"
        file = _private_file(path)
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while open: not an orphan
        self._file, self._path, self._hour = file, path, hour
        self._stream = self._pa.ipc.new_stream(file, self.schema)

    def _close_file(self) -> None:
        if self._file is None or self._path is None:
            return
        path, file = self._path, self._file
        try:
            self._stream.close()
            file.flush()
            to_parquet(path)  # before the lock goes with the descriptor: no one else converts it
        except OSError as exc:
            self._warn(f"could not close {path.name}: {exc.strerror or exc}; it is kept as it is")
        finally:
            file.close()
        self._file = self._stream = self._path = None

    def _abandon_file(self) -> None:
        """After a failed write the stream may end in a partial batch: close it, and let recovery
        keep its whole batches."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = self._stream = self._path = None

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= 60:  # at most a line a minute, whatever the traffic
            self._warned = now
            print(f"mlcd: prediction log: {message}", file=sys.stderr, flush=True)

    def _table(self, entries: list[_Entry]) -> pa.Table:
        pa = self._pa
        counts = np.fromiter((entry.rows for entry in entries), dtype=np.int64, count=len(entries))
        total = int(counts.sum())
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        columns: dict[str, Any] = {
            "request_id": np.repeat(np.array([e.request_id for e in entries], dtype=object), counts),
            "row": (np.arange(total) - starts).astype(np.int32),
            "time": np.repeat(np.array([e.time for e in entries]) * 1e6, counts).astype("datetime64[us]"),
            "endpoint": np.repeat(np.array([e.endpoint for e in entries], dtype=object), counts),
            "model_hash": [self.model_hash] * total,
            "git_commit": [self.git_commit] * total,
        }
        numbers = np.concatenate([entry.batch.numbers for entry in entries])
        for index, name in enumerate(matrix_columns(self.layout)):
            columns[f"input.{name}"] = pa.array(numbers[:, index].astype(np.float64), from_pandas=True)
        for feature in self.layout.features:
            if feature.is_text:
                columns[f"input.{feature.name}"] = [v for e in entries for v in e.batch.texts[feature.name]]
        if self.classes is None:
            columns["output.value"] = [v for e in entries for v in e.result["predictions"]]
        else:
            columns["output.label"] = [v for e in entries for v in e.result["labels"]]
            probabilities = [row for e in entries for row in e.result["probabilities"]]
            for name in self.classes:
                columns[f"output.probability.{name}"] = [row[name] for row in probabilities]
        return pa.Table.from_pydict(columns, schema=self.schema)


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


def to_parquet(stream: Path) -> Path | None:
    """The stream's whole batches as a Parquet file beside it (synced, then renamed into place),
    the stream removed. None when it held no whole batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    closed = stream.with_suffix(CLOSED_SUFFIX)
    if closed.exists():  # converted before, killed before the stream was removed
        stream.unlink()
        return closed
    batches = []
    schema = None
    try:
        with pa.ipc.open_stream(stream) as reader:
            schema = reader.schema
            while True:
                batches.append(reader.read_next_batch())
    except StopIteration:
        pass
    except (pa.ArrowInvalid, OSError):
        pass  # a kill -9 mid-write: the whole batches before it stand
    if schema is None or not batches:
        stream.unlink()
        return None
    temporary = stream.with_name(f".{closed.name}.tmp")
    temporary.unlink(missing_ok=True)
    with _private_file(temporary) as file:
        pq.write_table(pa.Table.from_batches(batches, schema), file, compression="zstd")
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(closed)
    _sync_directory(closed.parent)
    stream.unlink()
    return closed


def recover(directory: Path) -> list[Path]:
    """Convert the streams no living log holds (their writer was killed) to Parquet."""
    recovered = []
    for stream in sorted(directory.glob(f"{FILE_PREFIX}*{OPEN_SUFFIX}")):
        try:
            with stream.open("rb") as probe:
                try:
                    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process is writing it
                closed = to_parquet(stream)
        except FileNotFoundError:
            continue  # another process recovered it first
        if closed is not None:
            recovered.append(closed)
    return recovered


def check_directory(directory: Path) -> None:
    """Before the server starts: pyarrow is there and the directory can take files."""
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        raise ServeError(
            "the prediction log writes Parquet with pyarrow, which is not installed: "
            "`pip install pyarrow` (or `uv sync --extra pipeline`), or serve without --log-dir"
        ) from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".{FILE_PREFIX}probe-{os.getpid()}"
        _private_file(probe).close()
        probe.unlink()
    except OSError as exc:
        raise ServeError(
            f"cannot write the prediction log in {directory}: {exc.strerror or exc}; "
            "pass a writable --log-dir"
        ) from None


def closed_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{FILE_PREFIX}*{CLOSED_SUFFIX}"))


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
