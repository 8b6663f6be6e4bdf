"""data/tables.py: a table as one Parquet file or a directory of parts, written whole or not at all."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcd.data.tables import (
    parquet_files,
    parquet_partitions,
    read_table,
    row_count,
    row_groups,
    table_digest,
    table_exists,
    written_in_parts,
)
from mlcd.errors import SourceError


def _rows(start: int, stop: int) -> pa.Table:
    return pa.table(
        {"x": pa.array(range(start, stop), pa.int64()), "label": [f"r{i}" for i in range(start, stop)]}
    )


def test_batches_of_any_size_make_parts_of_the_given_rows_in_order(tmp_path):
    target = tmp_path / "train.parquet"
    with written_in_parts(target, 4) as parts:
        for start, stop in ((0, 3), (3, 3), (3, 13), (13, 14)):  # one of them empty
            parts.write(_rows(start, stop))
    assert [f.name for f in parquet_files(target)] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
        "part-00003.parquet",
    ]
    assert [pq.read_metadata(f).num_rows for f in parquet_files(target)] == [4, 4, 4, 2]
    assert read_table(target).equals(_rows(0, 14))
    assert row_count(target) == 14 and parts.rows == 14 and parts.parts == 4
    assert [(start, t.num_rows) for start, t in parquet_partitions(target, 3)] == [
        (0, 3),
        (3, 1),
        (4, 3),
        (7, 1),
        (8, 3),
        (11, 1),
        (12, 2),
    ]  # a partition never spans two parts, and the positions run on across them
    assert sum(rows for _, _, rows in row_groups(target)) == 14


def test_a_table_without_rows_keeps_its_schema_in_one_empty_part(tmp_path):
    target = tmp_path / "test.parquet"
    with written_in_parts(target, 10) as parts:
        parts.write(_rows(0, 0))
    assert [f.name for f in parquet_files(target)] == ["part-00000.parquet"]
    assert read_table(target).schema.names == ["x", "label"] and row_count(target) == 0


def test_a_later_batch_is_cast_to_the_first_schema(tmp_path):
    target = tmp_path / "t.parquet"
    with written_in_parts(target, 10) as parts:
        parts.write(pa.table({"x": pa.array([1.5], pa.float64())}))
        parts.write(pa.table({"x": pa.array([2], pa.int64())}))
    assert read_table(target)["x"].type == pa.float64()


def test_a_failure_mid_write_publishes_nothing_and_keeps_the_old_table(tmp_path):
    target = tmp_path / "dataset.parquet"
    pq.write_table(_rows(0, 5), target)  # written whole before
    before = table_digest(target)
    with pytest.raises(RuntimeError, match="disk"), written_in_parts(target, 2) as parts:
        parts.write(_rows(0, 5))
        raise RuntimeError("disk full")
    assert target.is_file() and table_digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.parquet"]  # no temporary left


def test_the_layout_switches_both_ways_without_leftovers(tmp_path):
    from mlcd.files import write_with

    target = tmp_path / "dataset.parquet"
    pq.write_table(_rows(0, 5), target)
    with written_in_parts(target, 2) as parts:  # now in partitions: a file becomes a directory
        parts.write(_rows(0, 5))
    assert target.is_dir() and len(parquet_files(target)) == 3 and table_exists(target)
    parted = table_digest(target)
    write_with(target, lambda tmp: pq.write_table(_rows(0, 5), tmp))  # and back to one file
    assert target.is_file() and read_table(target).equals(_rows(0, 5))
    assert table_digest(target) != parted  # the digest names the layout too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.parquet"]


def test_an_empty_or_missing_directory_is_no_table(tmp_path):
    assert not table_exists(tmp_path / "missing.parquet")
    (tmp_path / "empty.parquet").mkdir()
    assert not table_exists(tmp_path / "empty.parquet")
    with pytest.raises(SourceError, match=r"empty\.parquet is a folder without Parquet parts"):
        read_table(tmp_path / "empty.parquet")
