"""Batch scoring (`mlcd predict INPUT OUTPUT`): a table of any size through the bundle's model.

The input (a CSV or Parquet file, or a folder of them) is read in record batches, so memory
holds one batch, not the table. Each batch is validated and answered exactly as /predict
would (payload.to_batch, BundleModel.predict): a value /predict refuses stops the run with
the rows named, and nothing is written (the output appears whole or not at all). Columns
of the input that are not features (IDs, keys) are copied beside the predictions.
"""

from __future__ import annotations

import datetime as dt
import math
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.console import progress
from mlcd.errors import DataValidationError, SourceError
from mlcd.files import atomic_path
from mlcd.serve.asgi import PayloadError
from mlcd.serve.model import BundleModel, NonFiniteAnswerError
from mlcd.serve.payload import problem_place, to_batch
from mlcd.serve.selfcheck import self_check

BATCH_ROWS = 10_000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
LABEL_COLUMN = "predicted_label"
VALUE_COLUMN = "predicted_value"
PROBABILITY_PREFIX = "probability_"
SHOWN_PROBLEMS = 10


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


def _sent(value: Any) -> Any:
    """A cell as a JSON client sends it: a date or time as ISO-8601, a NaN as null."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _problem_lines(detail: Any, first_row: int) -> list[str]:
    """/predict's 422 detail as lines naming the input's rows (1-based, counting from the file's start)."""
    if isinstance(detail, str):
        return [detail]
    lines = []
    for problem in detail[:SHOWN_PROBLEMS]:
        row, field = problem_place(problem["loc"])
        place = f"row {first_row + row + 1:,}" if row is not None else "input"
        lines.append(f"{place}{f', column {field!r}' if field else ''}: {problem['msg']}")
    return lines


def predict_table(source: Path, target: Path, bundle: Path, batch_rows: int = BATCH_ROWS) -> Scored:
    """Score every row of `source` into `target` (CSV or Parquet by its suffix)."""
    import pyarrow as pa

    writer_format = _format(target, "output")
    model = BundleModel(bundle)
    self_check(model)
    dataset = _dataset(source)
    present = set(dataset.schema.names)
    absent = [f.name for f in model.features if f.name not in present and not f.may_be_missing]
    if absent:
        raise DataValidationError(f"{source} lacks the model's feature columns: {', '.join(absent)}")
    features = [f.name for f in model.features if f.name in present]
    keys = [name for name in dataset.schema.names if name not in model.layout.names]
    answers = _answer_fields(model)
    clash = sorted(set(keys) & {field.name for field in answers})
    if clash:
        raise DataValidationError(
            f"{source} already has columns named like the predictions: {', '.join(clash)}"
        )
    schema = pa.schema([*(dataset.schema.field(k) for k in keys), *answers])
    done = 0
    with (
        atomic_path(target) as tmp,
        progress() as bar,
        closing(_writer(tmp, writer_format, schema)) as writer,
    ):
        task = bar.add_task(f"scoring {source.name}", total=dataset.count_rows())
        for batch in dataset.to_batches(columns=[*keys, *features], batch_size=batch_rows):
            if batch.num_rows == 0:
                continue
            rows = batch.select(features).to_pylist()
            records = [{k: _sent(v) for k, v in row.items()} for row in rows]
            try:
                inputs = to_batch(records, model.layout, len(records))
                result = model.predict(inputs.numbers, inputs.texts)
            except PayloadError as exc:
                raise DataValidationError(
                    f"{source}: rows that /predict would refuse; nothing was written",
                    _problem_lines(exc.detail, done),
                ) from None
            except NonFiniteAnswerError as exc:
                shown = ", ".join(f"{done + r + 1:,}" for r in exc.rows[:SHOWN_PROBLEMS])
                raise DataValidationError(
                    f"{source}: the model gives no finite answer for rows {shown}"
                ) from None
            columns = [batch.column(name) for name in keys]
            if model.is_classifier:
                columns.append(result["labels"])
                columns += [[row[name] for row in result["probabilities"]] for name in model.classes]
            else:
                columns.append(result["predictions"])
            writer.write_table(pa.table(columns, schema=schema))
            done += batch.num_rows
            bar.advance(task, batch.num_rows)
    return Scored(done, keys, [field.name for field in answers])


def _answer_fields(model: BundleModel) -> list[Any]:
    """The prediction columns, in the order they are written: one place for their names and types."""
    import pyarrow as pa

    if not model.is_classifier:
        return [pa.field(VALUE_COLUMN, pa.float32())]
    probabilities = [pa.field(f"{PROBABILITY_PREFIX}{c}", pa.float32()) for c in model.classes]
    return [pa.field(LABEL_COLUMN, pa.string()), *probabilities]


def _writer(path: Path, kind: str, schema: Any) -> Any:
    """A Parquet or CSV writer of `schema` at `path`: a file with the columns even when no row comes."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    return pq.ParquetWriter(path, schema) if kind == "parquet" else pcsv.CSVWriter(path, schema)
