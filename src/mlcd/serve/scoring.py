"""One batch of a table through the bundle's model, as /predict answers it: batch scoring's unit of work.

The same function runs in this process and on a Dask worker (serve/batch_dask.py), so a table's
answers do not depend on where they were computed. A value /predict refuses raises
DataValidationError naming the rows, counted from the input's start (`first_row`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcd.errors import DataValidationError
from mlcd.serve.asgi import PayloadError
from mlcd.serve.model import BundleModel, Layout, NonFiniteAnswerError
from mlcd.serve.payload import problem_place, to_batch

LABEL_COLUMN = "predicted_label"
VALUE_COLUMN = "predicted_value"
PROBABILITY_PREFIX = "probability_"
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class Columns:
    """What a batch is read as and written as: small and picklable, sent with every remote batch."""

    source: str  # the input's name, for messages
    features: list[str]  # model features present in the input, read and scored
    keys: list[str]  # input columns copied beside the predictions
    schema: Any  # the output's pyarrow schema: keys, then the answer fields

    @property
    def read(self) -> list[str]:
        """The input columns a batch is read with: keys, then features."""
        return [*self.keys, *self.features]


def answer_fields(model: BundleModel) -> list[Any]:
    """The prediction columns, in the order they are written: one place for their names and types."""
    import pyarrow as pa

    if not model.is_classifier:
        return [pa.field(VALUE_COLUMN, pa.float32())]
    probabilities = [pa.field(f"{PROBABILITY_PREFIX}{c}", pa.float32()) for c in model.classes]
    return [pa.field(LABEL_COLUMN, pa.string()), *probabilities]


def score_batch(model: BundleModel, columns: Columns, batch: Any, first_row: int) -> Any:
    """The output table for one pyarrow record batch: its keys, then the model's answers."""
    import pyarrow as pa

    try:
        numbers, texts = number_columns(model.layout, columns.features, batch), {}
        if numbers is None:
            rows = batch.select(columns.features).to_pylist()
            records = [{k: _sent(v) for k, v in row.items()} for row in rows]
            inputs = to_batch(records, model.layout, len(records))
            numbers, texts = inputs.numbers, inputs.texts
        result = model.predict(numbers, texts)
    except PayloadError as exc:
        raise DataValidationError(
            f"{columns.source}: rows that /predict would refuse; nothing was written",
            _problem_lines(exc.detail, first_row),
        ) from None
    except NonFiniteAnswerError as exc:
        shown = ", ".join(f"{first_row + r + 1:,}" for r in exc.rows[:SHOWN_PROBLEMS])
        raise DataValidationError(
            f"{columns.source}: the model gives no finite answer for rows {shown}"
        ) from None
    out = [batch.column(name) for name in columns.keys]
    if model.is_classifier:
        out.append(result["labels"])
        out += [[row[name] for row in result["probabilities"]] for name in model.classes]
    else:
        out.append(result["predictions"])
    return pa.table(out, schema=columns.schema)


# Integers beyond 2**53 are not all floats: a column holding one is read value by value, as /predict
# reads it, rather than through float64 (which would round it twice on the way to float32).
_EXACT_INTEGERS = 2**53


def number_columns(layout: Layout, features: list[str], batch: Any) -> np.ndarray | None:
    """/predict's all-numbers case read column by column: the float32 matrix when every feature is
    present as an integer or float column without a gap, each value within its feature's bounds
    (NaN fails them). None: the batch is read record by record, which names each problem exactly as
    /predict does. On the bundled data: 500k rows a second, against 39k record by record
    (benchmarks/scale.py measures it)."""
    import pyarrow.types as types

    if not layout.only_numbers or len(features) != len(layout.names):
        return None
    matrix = np.empty((batch.num_rows, len(layout.names)), dtype=np.float64)
    for index, name in enumerate(layout.names):
        column = batch.column(name)
        integer = types.is_integer(column.type)
        if column.null_count or not (integer or types.is_floating(column.type)):
            return None
        values = column.to_numpy(zero_copy_only=False)
        if integer and values.size and (values.max() > _EXACT_INTEGERS or values.min() < -_EXACT_INTEGERS):
            return None
        matrix[:, index] = values
    low, high = np.array(layout.bounds, dtype=np.float64).T
    if not ((matrix >= low) & (matrix <= high)).all():
        return None
    return matrix.astype(np.float32)


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
