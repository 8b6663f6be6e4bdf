"""Append-only Parquet logs written off the request path: the prediction log and the feedback log.

The request path only appends an entry to a bounded list under a lock; when the list holds
`max_queued_records` the entry is dropped and counted, so a slow or full disk never slows an
answer. A background thread turns the list into columns every `flush_seconds` and appends them
to the open file, an Arrow IPC stream: each flush is whole batches that survive a kill -9 (a
truncated stream reads up to its last whole batch). A file is closed by size, when the UTC hour
changes and at shutdown: converted to Parquet under a temporary name, synced and renamed, so a
`.parquet` file is always complete. A stream no live writer holds (its lock went with a killed
process) is converted when the next log on the directory starts. Files are created 0600: they
hold what clients sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

from mlcd.errors import ServeError

if TYPE_CHECKING:
    import pyarrow as pa

CLOSED_SUFFIX = ".parquet"  # what readers read
OPEN_SUFFIX = ".arrows"  # the file being written: an Arrow IPC stream
PRIVATE = 0o600
# Parquet dictionaries pay for columns whose values repeat: the endpoint, the model, labels, text
# features. Logged numbers and request ids hardly repeat, and trying a dictionary on them first made
# closing a file of served records 2.4 times slower and its file twice as large (2026-12-06).
UNIQUE_COLUMNS = frozenset({"request_id"})

Entry = TypeVar("Entry")


@dataclass(frozen=True)
class LogSettings:
    directory: Path
    sample: float = 1.0  # share of requests logged (whole requests: a batch is logged or not)
    max_file_bytes: int = 32 * 1024 * 1024
    # Records waiting for the writer; past it, new ones are dropped (memory stays bounded).
    max_queued_records: int = 50_000
    flush_seconds: float = 0.5
    remote: str | None = None  # s3://bucket/prefix: closed files are shipped there (log_shipping.py)


def log_settings(directory: Path | None, sample: float, remote: str | None) -> LogSettings | None:
    """What `mlcd serve --log-dir --log-sample --log-remote` asks for (None: no log)."""
    if directory is None:
        if remote is not None:
            raise ServeError("--log-remote ships the files --log-dir writes: give --log-dir too")
        return None
    if remote is not None:
        from mlcd.serve.log_shipping import Remote, client

        Remote.parse(remote)
        client()  # boto3 is there
    return LogSettings(directory.absolute(), sample=sample, remote=remote)


@dataclass(frozen=True)
class Counters:
    """Prometheus counters of one log: records written; records dropped, by reason; files shipped
    to the remote, by outcome."""

    written: Any
    dropped: Any
    shipped: Callable[[str], Any] | None = None  # outcome -> its counter


class RotatingLog(Generic[Entry]):
    """Entries in, `table(entries)` (an Arrow table of `schema`) out to files named
    `<prefix><UTC hour>-<pid>-<n>`."""

    def __init__(
        self,
        settings: LogSettings,
        prefix: str,
        schema: pa.Schema,
        table: Callable[[list[Entry]], pa.Table],
        counters: Counters,
    ) -> None:
        import pyarrow as pa

        self.settings, self.prefix, self.schema, self._table = settings, prefix, schema, table
        self._counters = counters
        settings.directory.mkdir(parents=True, exist_ok=True)
        recover(settings.directory, prefix)
        self._lock = threading.Lock()
        self._pending: list[tuple[Entry, int]] = []
        self._queued = 0
        self._stream: Any = None  # pa.ipc.RecordBatchStreamWriter of the open file
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._hour = ""
        self._serial = 0
        self._warned = -60.0
        self._s3: Any = None  # the S3 client, made on the writer thread at the first upload
        self._pa = pa
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mlcd-log-{prefix}", daemon=True)
        self._thread.start()

    def put(self, entry: Entry, rows: int) -> None:
        """Queue `entry` (`rows` records) for the writer, or drop and count it when the queue is full."""
        with self._lock:
            room = self._queued + rows <= self.settings.max_queued_records
            if room:
                self._pending.append((entry, rows))
                self._queued += rows
        if not room:
            self._counters.dropped.labels("queue_full").inc(rows)

    def close(self) -> None:
        """Write what is queued and close the open file as Parquet (the server's shutdown)."""
        self._stop.set()
        self._thread.join()

    # --- the writer thread

    def _run(self) -> None:
        self._ship()  # what an earlier run closed and could not ship
        while True:
            stopping = self._stop.wait(self.settings.flush_seconds)
            self._flush()
            if stopping:
                self._close_file()
                return

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending, self._queued = self._pending, [], 0
        hour = datetime.now(UTC).strftime("%Y%m%dT%H")
        full = self._file is not None and self._file.tell() >= self.settings.max_file_bytes
        if self._file is not None and (hour != self._hour or full):
            self._close_file()
        if not pending:
            return
        rows = sum(count for _, count in pending)
        try:
            if self._file is None:
                self._open_file(hour)
            table = self._table([e for e, _ in pending])
            self._stream.write_table(table)
            assert self._file is not None
            self._file.flush()  # to the OS: a kill -9 of this process keeps it
            self._counters.written.inc(rows)
        except OSError as exc:
            self._counters.dropped.labels("write_error").inc(rows)
            self._warn(f"{rows} records dropped: {exc.strerror or exc}")
            self._abandon_file()

    def _open_file(self, hour: str) -> None:
        # A restarted server may get its predecessor's pid (in a container it is always 1): a name an
        # earlier file has, open or closed, is skipped, or closing would take the old file for ours.
        while True:
            self._serial += 1
            stem = f"{self.prefix}{hour}-{os.getpid()}-{self._serial:05d}"
            path = self.settings.directory / f"{stem}{OPEN_SUFFIX}"
            if not path.exists() and not path.with_suffix(CLOSED_SUFFIX).exists():
                break
        file = private_file(path)
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
        self._ship()

    def _ship(self) -> None:
        """Every closed file not yet shipped, to the remote; a failure waits for the next close."""
        if self.settings.remote is None:
            return
        from mlcd.serve import log_shipping

        remote = log_shipping.Remote.parse(self.settings.remote)
        for path in log_shipping.unshipped(closed_files(self.settings.directory, self.prefix)):
            try:
                log_shipping.ship(remote, path, self._s3 or self._connect())
            except Exception as exc:  # botocore's errors, a full disk for the marker: tried again later
                if self._counters.shipped is not None:
                    self._counters.shipped("failed").inc()
                self._warn(f"could not ship {path.name} to {remote}: {exc}; it is tried again later")
                return
            if self._counters.shipped is not None:
                self._counters.shipped("shipped").inc()

    def _connect(self) -> Any:
        from mlcd.serve import log_shipping

        self._s3 = log_shipping.client()
        return self._s3

    def _abandon_file(self) -> None:
        """After a failed write the stream may end in a partial batch: close it; recovery keeps its
        whole batches."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = self._stream = self._path = None

    def _warn(self, message: str) -> None:
        import time

        now = time.monotonic()
        if now - self._warned >= 60:  # at most a line a minute, whatever the traffic
            self._warned = now
            print(f"mlcd: {self.prefix.rstrip('-')} log: {message}", file=sys.stderr, flush=True)


def private_file(path: Path) -> IO[bytes]:
    """A new file only its owner can read (it fails if `path` exists)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE), "wb")


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
    repeating = [f.name for f in schema if pa.types.is_string(f.type) and f.name not in UNIQUE_COLUMNS]
    with private_file(temporary) as file:
        table = pa.Table.from_batches(batches, schema)
        pq.write_table(table, file, compression="zstd", use_dictionary=repeating)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(closed)
    _sync_directory(closed.parent)
    stream.unlink()
    return closed


def recover(directory: Path, prefix: str) -> list[Path]:
    """Convert the streams no living log holds (their writer was killed) to Parquet."""
    recovered = []
    for stream in sorted(directory.glob(f"{prefix}*{OPEN_SUFFIX}")):
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


def closed_files(directory: Path, prefix: str) -> list[Path]:
    return sorted(directory.glob(f"{prefix}*{CLOSED_SUFFIX}"))


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
        probe = directory / f".probe-{os.getpid()}"
        private_file(probe).close()
        probe.unlink()
    except OSError as exc:
        raise ServeError(
            f"cannot write the prediction log in {directory}: {exc.strerror or exc}; "
            "pass a writable --log-dir"
        ) from None


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
