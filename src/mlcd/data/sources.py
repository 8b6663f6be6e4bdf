"""Ingest: turn `data.source` into the raw Parquet dataset.

Sources are the datasets bundled with scikit-learn (offline, the default), a
local CSV/Parquet file, or a seeded synthetic generator for scale work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mlcd.config import S3_SCHEME, DataParams, ProjectPaths
from mlcd.console import progress, stage
from mlcd.data.tables import size_bytes, unbuffered_parquet, written_in_parts
from mlcd.errors import SourceError
from mlcd.files import human_size, write_with

BREAST_CANCER_TARGET = "diagnosis"
DIABETES_TARGET = "progression"
SYNTHETIC_CHUNK_ROWS = 250_000
# Where an s3:// source is served when it is not AWS (MinIO, moto): the variable AWS's own tools read.
S3_ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"

if TYPE_CHECKING:
    import pyarrow.dataset as ds


def _snake(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def breast_cancer_frame() -> pd.DataFrame:
    """The Wisconsin diagnostic data shipped in scikit-learn, with readable labels."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.rename(columns=_snake)
    # scikit-learn codes malignant as 0; strings keep the meaning in every output.
    labels = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    frame[BREAST_CANCER_TARGET] = labels
    return frame


def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    frame = bunch.data.rename(columns=_snake)
    frame[DIABETES_TARGET] = bunch.target.astype("float64")
    return frame


def synthetic_chunks(rows: int) -> list[tuple[int, int]]:
    return [
        (start, min(rows, start + SYNTHETIC_CHUNK_ROWS)) for start in range(0, rows, SYNTHETIC_CHUNK_ROWS)
    ]


def synthetic_tables(rows: int, seed: int) -> Iterator[pa.Table]:
    """Rows drawn from per-class Gaussians fitted to the breast-cancer data, a chunk at a time.

    Same columns, dtypes and labels as the bundled data, so the same schema and
    model code apply at any size. Chunks are seeded by (seed, chunk index), so
    the output is the same however it is written.
    """
    reference = breast_cancer_frame()
    features = reference.columns.drop(BREAST_CANCER_TARGET)
    labels = sorted(reference[BREAST_CANCER_TARGET].unique())
    balance = reference[BREAST_CANCER_TARGET].value_counts(normalize=True)[labels].to_numpy()
    stats = []
    for label in labels:
        values = reference.loc[reference[BREAST_CANCER_TARGET] == label, features].to_numpy()
        stats.append((values.mean(axis=0), np.linalg.cholesky(np.cov(values, rowvar=False))))
    schema = pa.schema([(name, pa.float64()) for name in features] + [(BREAST_CANCER_TARGET, pa.string())])
    for index, (start, stop) in enumerate(synthetic_chunks(rows)):
        rng = np.random.default_rng([seed, index])
        n = stop - start
        classes = rng.choice(len(labels), size=n, p=balance)
        noise = rng.standard_normal((n, len(features)))
        values = np.empty_like(noise)
        for k, (mean, chol) in enumerate(stats):
            mask = classes == k
            values[mask] = mean + noise[mask] @ chol.T
        np.maximum(values, 0.0, out=values)  # every measurement is non-negative
        columns = [pa.array(values[:, j]) for j in range(len(features))]
        columns.append(pa.array(np.asarray(labels, dtype=object)[classes], type=pa.string()))
        yield pa.Table.from_arrays(columns, schema=schema)


def write_synthetic(target: Path, rows: int, seed: int) -> None:
    """synthetic_tables as one Parquet file."""
    writer = None
    try:
        with progress() as bar:
            task = bar.add_task("synthetic rows", total=rows)
            for table in synthetic_tables(rows, seed):
                writer = writer or pq.ParquetWriter(target, table.schema)
                writer.write_table(table)
                bar.advance(task, table.num_rows)
    finally:
        if writer is not None:
            writer.close()


# The first bytes of files that are often renamed to .csv by mistake.
_NOT_CSV = {
    b"PK\x03\x04": "a zip archive (an Excel .xlsx?): export it as CSV or Parquet",
    b"\x1f\x8b": "gzip-compressed: name it .csv.gz",
    b"PAR1": "a Parquet file: name it .parquet",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls: export it as CSV or Parquet",
}
_DELIMITERS = (";", "\t", "|")
_PARQUET = (".parquet", ".pq")
_TAB_SEPARATED = (".tsv", ".tsv.gz")


def _check_kind(path: Path) -> None:
    """Refuse a file whose bytes are not what its name says, before a parser trips on them."""
    with path.open("rb") as handle:
        head = handle.read(4)
    name = path.name.lower()
    if name.endswith(_PARQUET):
        if head != b"PAR1":
            raise SourceError(f"data.source {str(path)!r} is not a Parquet file (no PAR1 at its start)")
        return
    if name.endswith(".gz"):
        if not head.startswith(b"\x1f\x8b"):
            plain = path.name[: -len(".gz")]
            raise SourceError(f"data.source {str(path)!r} is not gzip-compressed: name it {plain}")
        return
    for magic, what in _NOT_CSV.items():
        if head.startswith(magic):
            raise SourceError(f"data.source {str(path)!r} is not CSV text but {what}")


def _read_csv(path: Path, delimiter: str, encoding: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"data.source {str(path)!r} is not {encoding} text (byte 0x{exc.object[exc.start]:02x} at "
            f"position {exc.start:,}): set data.encoding in params.yaml, e.g. latin-1 or cp1252"
        ) from None
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for other in _DELIMITERS:
            if other != delimiter and other in header:
                # json.dumps: YAML's double quotes read "\t" as a tab; its single quotes would not.
                raise SourceError(
                    f"data.source {str(path)!r} read as one column {header[:60]!r}: it looks "
                    f"{other!r}-delimited; set data.delimiter: {json.dumps(other)} in params.yaml"
                )
    return frame


def read_source_file(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV or TSV (optionally gzipped) or Parquet file as a DataFrame, or a SourceError saying what to fix.

    A .tsv file is tab-separated whatever data.delimiter says: its name says so.
    """
    if not path.exists():
        raise SourceError(
            f"data.source {str(path)!r} does not exist: check the path in params.yaml "
            "(relative paths start at the project root), or fetch it with `dvc pull`"
        )
    if path.is_dir():
        raise SourceError(f"data.source {str(path)!r} is a directory; name a .csv or .parquet file")
    if path.stat().st_size == 0:
        raise SourceError(f"data.source {str(path)!r} is empty (0 bytes)")
    _check_kind(path)
    try:
        if path.name.lower().endswith(_PARQUET):
            frame = pd.read_parquet(path)
        else:
            tabs = path.name.lower().endswith(_TAB_SEPARATED)
            frame = _read_csv(path, "\t" if tabs else delimiter, encoding)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowInvalid, OSError, EOFError) as exc:
        raise SourceError(f"cannot read data.source {str(path)!r}: {exc}") from None
    # Mixed-type text columns (a stray word in a numeric column) must reach
    # validation as text, where the error can name them, not crash the writer.
    for name, dtype in frame.dtypes.items():
        if pd.api.types.is_object_dtype(dtype):
            frame[name] = frame[name].astype("string")
    return frame


def is_parquet_set(source: str) -> bool:
    """A folder of Parquet files (written with a final /) or an s3:// prefix."""
    return source.startswith(S3_SCHEME) or source.endswith("/")


def _s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get(S3_ENDPOINT_VARIABLE)
    if not endpoint:
        return pafs.S3FileSystem()
    scheme, _, host = endpoint.rpartition("://")
    return pafs.S3FileSystem(endpoint_override=host.rstrip("/"), scheme=scheme or "https")


def parquet_set(params: DataParams, paths: ProjectPaths) -> ds.Dataset:
    """data.source's Parquet files, in the order of their names, as one dataset (read lazily).

    An s3:// prefix is read where it lies, with the AWS credentials of the environment.
    """
    import pyarrow.dataset as ds

    source = params.source
    hint = ""
    if source.startswith(S3_SCHEME):
        filesystem: pafs.FileSystem = _s3_filesystem()
        base = source[len(S3_SCHEME) :].rstrip("/")
        where = os.environ.get(S3_ENDPOINT_VARIABLE) or "AWS"
        hint = f"; check that {where} answers and the credentials may list it"
    else:
        filesystem, base = pafs.LocalFileSystem(), str(paths.source(params))
        if not Path(base).is_dir():
            raise SourceError(f"data.source {source!r} is not a folder: put its Parquet files in it")
    try:
        found = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    except OSError as exc:  # pyarrow raises OSError for every S3 failure; its text says which
        raise SourceError(f"cannot list data.source {source!r}: {exc}{hint}") from None
    files = sorted(
        f.path for f in found if f.type == pafs.FileType.File and f.path.lower().endswith(_PARQUET)
    )
    if not files:
        raise SourceError(f"data.source {source!r} holds no .parquet files")
    try:
        unbuffered = ds.ParquetFragmentScanOptions(pre_buffer=False)  # see tables.unbuffered_parquet
        parquet = ds.ParquetFileFormat(default_fragment_scan_options=unbuffered)
        return ds.dataset(files, format=parquet, filesystem=filesystem)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"cannot read data.source {source!r}: {exc}") from None


def source_batches(params: DataParams, paths: ProjectPaths, rows: int) -> Iterator[pa.RecordBatch]:
    """data.source `rows` rows at a time: what a partitioned ingest reads (Parquet sources only)."""
    try:
        if is_parquet_set(params.source):
            # One file and one batch ahead: pyarrow's defaults read far ahead and hold what they read.
            yield from parquet_set(params, paths).to_batches(
                batch_size=rows, batch_readahead=1, fragment_readahead=1
            )
            return
        path = paths.source(params)
        if not path.name.lower().endswith(_PARQUET):
            raise SourceError(
                f"data.source {params.source!r}: partitioned ingest (data.partition_rows) reads Parquet; "
                "convert the file to Parquet, or set data.partition_rows: null to read it whole"
            )
        if not path.is_file():
            raise SourceError(f"data.source {params.source!r} does not exist: check the path in params.yaml")
        _check_kind(path)
        yield from unbuffered_parquet(path).iter_batches(batch_size=rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # e.g. a file whose columns disagree with the first
        raise SourceError(f"cannot read data.source {params.source!r}: {exc}") from None


def _write_batches(
    target: Path, batches: Iterator[pa.RecordBatch | pa.Table], part_rows: int, total: int | None = None
) -> int:
    """The rows as a table in parts of `part_rows` rows (data/tables.py), published whole or not at all."""
    with written_in_parts(target, part_rows) as parts, progress() as bar:
        task = bar.add_task("rows", total=total)
        for batch in batches:
            parts.write(batch)
            bar.advance(task, batch.num_rows)
        if not parts.rows:  # raised inside, so nothing is published
            raise SourceError("data.source holds no rows")
    return parts.rows


_BUNDLED = {
    "sklearn:breast_cancer": breast_cancer_frame,
    "sklearn:diabetes": diabetes_frame,
}  # small: read whole


def load_frame(params: DataParams, paths: ProjectPaths) -> pd.DataFrame:
    if params.source in _BUNDLED:
        return _BUNDLED[params.source]()
    if is_parquet_set(params.source):
        try:
            return parquet_set(params, paths).to_table().to_pandas()
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SourceError(f"cannot read data.source {params.source!r}: {exc}") from None
    return read_source_file(paths.source(params), params.delimiter, params.encoding)


def run_ingest(params: DataParams, paths: ProjectPaths) -> None:
    with stage("ingest") as log:
        target = paths.raw_data
        if params.source == "synthetic" and params.partition_rows:
            _write_batches(
                target, synthetic_tables(params.rows, params.seed), params.partition_rows, params.rows
            )
            log.add(f"{params.rows:,} synthetic rows (seed {params.seed}), {params.partition_rows:,} a part")
        elif params.source == "synthetic":
            write_with(target, lambda tmp: write_synthetic(tmp, params.rows, params.seed))
            log.add(f"{params.rows:,} synthetic rows (seed {params.seed})")
        elif params.partition_rows and params.source not in _BUNDLED:
            size = params.partition_rows
            rows = _write_batches(target, source_batches(params, paths, size), size)
            log.add(f"{rows:,} rows from {params.source}, {size:,} at a time")
        else:
            frame = load_frame(params, paths)
            write_with(target, lambda tmp: frame.to_parquet(tmp, index=False))
            log.add(f"{len(frame):,} rows x {frame.shape[1]} columns from {params.source}")
        log.add(f"-> {target} ({human_size(size_bytes(target))})")
