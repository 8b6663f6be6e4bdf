"""Batch scoring (`mlcd predict INPUT OUTPUT`): a table of any size through the bundle's model.

The input (a CSV or Parquet file, or a folder of them) is read in record batches, so memory
holds one batch, not the table. Each batch is validated and answered exactly as /predict
would (payload.to_batch, BundleModel.predict): a value /predict refuses stops the run with
the rows named, and nothing is written (the output appears whole or not at all). Columns
of the input that are not features (IDs, keys) are copied beside the predictions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.cluster import Engine, engine
from mlcd.console import progress
from mlcd.errors import DataValidationError, SourceError
from mlcd.files import atomic_path
from mlcd.serve.model import BundleModel
from mlcd.serve.scoring import Columns, answer_fields, score_batch
from mlcd.serve.selfcheck import self_check

BATCH_ROWS = 10_000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Scored:
    rows: int
    keys: list[str]  # input columns copied beside the predictions
    columns: list[str]  # prediction columns written


def _format(path: Path, role: str) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise SourceError(f"{role} {path}: use a file ending in {', '.join(FORMATS)} (or a folder of them)")
    return found


def _dataset(source: Path) -> Any:
    import pyarrow.dataset as ds

    if not source.exists():
        raise SourceError(f"{source} does not exist")
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    kinds = {_format(p, "input") for p in files}
    if len(kinds) != 1:
        raise SourceError(
            f"{source}: put files of one format in the folder (found {sorted(kinds) or 'none'})"
        )
    kind = kinds.pop()
    if kind == "csv":
        import pyarrow.csv as pcsv

        # An empty cell is a missing value, as /invocations' CSV and pandas read it (pyarrow's
        # default would make it the text "", a category training never saw).
        convert = pcsv.ConvertOptions(strings_can_be_null=True)
        return ds.dataset([str(p) for p in files], format=ds.CsvFileFormat(convert_options=convert))
    return ds.dataset([str(p) for p in files], format=kind)


def predict_table(source: Path, target: Path, bundle: Path, batch_rows: int = BATCH_ROWS) -> Scored:
    """Score every row of `source` into `target` (CSV or Parquet by its suffix)."""
    writer_format = _format(target, "output")
    model = BundleModel(bundle)
    self_check(model)
    dataset = _dataset(source)
    columns = _columns(source, dataset, model)
    done = 0
    with (
        engine() as where,
        atomic_path(target) as tmp,
        progress() as bar,
        closing(_writer(tmp, writer_format, columns.schema)) as writer,
    ):
        task = bar.add_task(f"scoring {source.name} on {where.describe()}", total=dataset.count_rows())
        for table in _scored(where, model, bundle, columns, dataset, batch_rows):
            writer.write_table(table)
            done += table.num_rows
            bar.advance(task, table.num_rows)
    return Scored(done, columns.keys, columns.schema.names[len(columns.keys) :])


def _columns(source: Path, dataset: Any, model: BundleModel) -> Columns:
    """Which input columns are features and which are kept beside the answers; refuses a gap or a clash."""
    import pyarrow as pa

    present = set(dataset.schema.names)
    absent = [f.name for f in model.features if f.name not in present and not f.may_be_missing]
    if absent:
        raise DataValidationError(f"{source} lacks the model's feature columns: {', '.join(absent)}")
    features = [f.name for f in model.features if f.name in present]
    keys = [name for name in dataset.schema.names if name not in model.layout.names]
    answers = answer_fields(model)
    clash = sorted(set(keys) & {field.name for field in answers})
    if clash:
        raise DataValidationError(
            f"{source} already has columns named like the predictions: {', '.join(clash)}"
        )
    schema = pa.schema([*(dataset.schema.field(k) for k in keys), *answers])
    return Columns(str(source), features, keys, schema)


def _parquet_files(dataset: Any) -> list[Path] | None:
    """The dataset's files when they are Parquet (workers can read their row groups), else None."""
    import pyarrow.dataset as ds

    if not isinstance(dataset.format, ds.ParquetFileFormat):
        return None
    return [Path(name) for name in dataset.files]


def _scored(
    where: Engine, model: BundleModel, bundle: Path, columns: Columns, dataset: Any, batch_rows: int
) -> Iterator[Any]:
    """Each batch's output table, in order: here, or on the cluster MLCD_DASK_SCHEDULER names
    (whose workers read a Parquet input's row groups themselves)."""
    if where.client is not None:
        from mlcd.serve.batch_dask import row_groups, scored_on_cluster

        parquet = _parquet_files(dataset)
        work = row_groups(parquet) if parquet is not None else _batches(dataset, columns, batch_rows)
        yield from scored_on_cluster(where.client, where.workers, bundle, columns, work, batch_rows)
        return
    first_row = 0
    for batch in _batches(dataset, columns, batch_rows):
        yield score_batch(model, columns, batch, first_row)
        first_row += batch.num_rows


def _batches(dataset: Any, columns: Columns, batch_rows: int) -> Iterator[Any]:
    batches = dataset.to_batches(columns=columns.read, batch_size=batch_rows)
    return (batch for batch in batches if batch.num_rows)


def _writer(path: Path, kind: str, schema: Any) -> Any:
    """A Parquet or CSV writer of `schema` at `path`: a file with the columns even when no row comes."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, schema) if kind == "parquet" else pcsv.CSVWriter(path, schema)
