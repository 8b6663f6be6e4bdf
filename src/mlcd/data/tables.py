"""The data stages' tables on disk: one Parquet file, or a directory of part files.

Read whole (data.partition_rows: null), ingest and preprocess write one file. In partitions they
write a directory of the same name (`data/raw/dataset.parquet/part-00000.parquet`, ...), each part
at most data.partition_rows rows, all with one schema: the layout Spark and Dask write, which any
Parquet reader takes as one table, and whose parts a cluster's workers can read one each. dvc.yaml
names the same path either way (DVC hashes a directory as one output).

Every reader of a stage's table goes through here, so no other module knows which layout it has.
Parts are read in the order of their names, which is the order of the rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlcd.errors import SourceError
from mlcd.files import atomic_dir, sha256_file

PART_GLOB = "part-*.parquet"


def _part_file_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def parquet_files(path: Path) -> list[Path]:
    """The files of a table: the file itself, or a directory's parts in order."""
    if not path.is_dir():
        return [path]
    parts = sorted(path.glob(PART_GLOB))
    if not parts:
        raise SourceError(f"{path} is a folder without Parquet parts ({PART_GLOB}): run `dvc repro` again")
    return parts


def table_exists(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.glob(PART_GLOB)))


def unbuffered_parquet(path: Path) -> Any:
    """A Parquet file (pyarrow.parquet.ParquetFile) to read batch by batch in bounded memory.

    Without pre-buffering: with it, pyarrow kept what it had read ahead, and a stage's memory grew
    by about a partition per partition (measured on 3M rows in 1M-row batches: 1.2 GB against 0.45).
    """
    return pq.ParquetFile(path, pre_buffer=False)


def table_schema(path: Path) -> pa.Schema:
    return pq.read_schema(parquet_files(path)[0])


def row_count(path: Path) -> int:
    return sum(pq.read_metadata(file).num_rows for file in parquet_files(path))


def size_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in parquet_files(path))


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A table whole (its parts joined without a copy)."""
    tables = [pq.read_table(file, columns=columns) for file in parquet_files(path)]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def parquet_partitions(
    path: Path, rows: int, columns: list[str] | None = None
) -> Iterator[tuple[int, pa.Table]]:
    """A table `rows` rows at a time (fewer at the end of a part), each with its first row's position."""
    start = 0
    for file in parquet_files(path):
        for batch in unbuffered_parquet(file).iter_batches(batch_size=rows, columns=columns):
            table = pa.Table.from_batches([batch])
            del batch  # one partition in memory: the caller drops its own before asking for the next
            yield start, table
            start += table.num_rows
            del table


def row_groups(path: Path) -> list[tuple[Path, int, int]]:
    """Every Parquet row group of a table, in order: (file, group, rows)."""
    found = []
    for file in parquet_files(path):
        metadata = pq.read_metadata(file)
        found += [
            (file, group, metadata.row_group(group).num_rows) for group in range(metadata.num_row_groups)
        ]
    return found


def table_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's part names and their own sha256."""
    if not path.is_dir():
        return sha256_file(path)
    listing = "".join(f"{file.name} {sha256_file(file)}\n" for file in parquet_files(path))
    return hashlib.sha256(listing.encode()).hexdigest()


class PartWriter:
    """Rows, in order, into part files of at most `part_rows` rows each, all with the first schema."""

    def __init__(self, folder: Path, part_rows: int) -> None:
        if part_rows < 1:
            raise ValueError(f"part_rows must be at least 1, not {part_rows}")
        self.folder, self.part_rows = folder, part_rows
        self.schema: pa.Schema | None = None
        self.rows = 0
        self.parts = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_part = 0

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open()
            assert self._writer is not None
            take = min(self.part_rows - self._in_part, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            offset, self._in_part, self.rows = offset + take, self._in_part + take, self.rows + take
            if self._in_part == self.part_rows:
                self._close_part()

    def close(self) -> None:
        """The open part closed; a table without rows still gets one (empty) part, for its schema."""
        if self.parts == 0 and self.schema is not None:
            self._open()
        self._close_part()

    def _open(self) -> None:
        assert self.schema is not None
        self._writer = pq.ParquetWriter(self.folder / _part_file_name(self.parts), self.schema)
        self.parts += 1
        self._in_part = 0

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@contextmanager
def written_in_parts(target: Path, part_rows: int) -> Iterator[PartWriter]:
    """A PartWriter whose directory replaces `target` (a file or a directory) only on success."""
    with atomic_dir(target) as folder:
        writer = PartWriter(folder, part_rows)
        try:
            yield writer
        finally:
            writer.close()
