"""MLflow's scoring protocol on /invocations, so clients of `mlflow models serve` work unchanged.

JSON bodies carry exactly one of `dataframe_split`, `dataframe_records`, `instances` or
`inputs` (as MLflow's own serializer, `convert_input_example_to_serving_input`, writes
them); `text/csv` is a header row and one row per record. Everything becomes records keyed by
feature name and is validated as /predict's, so the answers are the same. The answer is
MLflow's `{"predictions": [...]}` (labels or values), plus /predict's probabilities.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from mlcd.serve.asgi import JSON, PayloadError, short
from mlcd.serve.model import Layout
from mlcd.serve.payload import parse_json

CSV = "text/csv"
MEDIA_TYPES = (JSON, CSV)
_SPLIT_KEYS = frozenset({"columns", "data", "index"})
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def records(body: bytes, media_type: str, layout: Layout) -> list[Any]:
    if media_type == CSV:
        return _csv_records(body, layout)
    request = parse_json(body)
    if not isinstance(request, dict):
        raise PayloadError(422, f"send a JSON object with one of {', '.join(FORMATS)}")
    formats = [key for key in FORMATS if key in request]
    others = sorted(set(request) - set(FORMATS))
    if len(formats) != 1 or others:
        extra = f"; {others} are not understood (this model takes no params)" if others else ""
        raise PayloadError(422, f"send exactly one of {', '.join(FORMATS)}, got {formats or 'none'}{extra}")
    data = request[formats[0]]
    if formats[0] == "dataframe_split":
        return _split_records(data, layout)
    if formats[0] == "dataframe_records":
        if not isinstance(data, list):
            raise PayloadError(422, "dataframe_records must be a list of records")
        return data
    return _tensor_records(formats[0], data, layout)


def answer(result: dict[str, Any], model_ref: dict[str, Any], request_id: str) -> dict[str, Any]:
    if "labels" in result:
        return {
            "predictions": result["labels"],
            "probabilities": result["probabilities"],
            "model": model_ref,
            "request_id": request_id,
        }
    return {"predictions": result["predictions"], "model": model_ref, "request_id": request_id}


def _split_records(data: Any, layout: Layout) -> list[Any]:
    """pandas' orient="split": {"columns": [...], "data": [[...], ...]} (an "index" is ignored)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list) or set(data) - _SPLIT_KEYS:
        raise PayloadError(
            422, 'dataframe_split must be {"columns": [...], "data": [[...], ...]} (and "index")'
        )
    columns = data.get("columns", list(layout.names))
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise PayloadError(422, "dataframe_split's columns must be a list of column names")
    _refuse_repeated(columns, "dataframe_split's columns")
    return [_row_record(row, columns, index) for index, row in enumerate(data["data"])]


def _tensor_records(key: str, data: Any, layout: Layout) -> list[Any]:
    """TF-serving style: a list of records, a dict of columns, one record, or rows by position."""
    if isinstance(data, dict):
        if data and all(isinstance(v, list) for v in data.values()):
            lengths = {len(v) for v in data.values()}
            if len(lengths) != 1:
                raise PayloadError(422, f"{key}: the columns have different lengths {sorted(lengths)}")
            return [dict(zip(data, row, strict=True)) for row in zip(*data.values(), strict=True)]
        return [data]
    if not isinstance(data, list):
        raise PayloadError(422, f"{key} must be a list of records, a dict of columns or a list of rows")
    names = list(layout.names)
    return [
        _row_record(row, names, index) if isinstance(row, list) else row for index, row in enumerate(data)
    ]


def _row_record(row: Any, columns: list[str], index: int) -> dict[str, Any]:
    if not isinstance(row, list) or len(row) != len(columns):
        raise PayloadError(422, f"row {index} has {_count(row)} values for {len(columns)} columns")
    return dict(zip(columns, row, strict=True))


def _csv_records(body: bytes, layout: Layout) -> list[dict[str, Any]]:
    """A header row, then records; empty cells are missing values, numbers are read for numeric features."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(400, f"the CSV is not UTF-8: {exc}") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise PayloadError(400, f"the CSV cannot be read: {exc}") from None
    if len(rows) < 2:
        raise PayloadError(422, "send a header row of feature names, then one row per record")
    header, numeric = rows[0], {f.name for f in layout.features if f.numeric}
    _refuse_repeated(header, "the CSV header")
    return [
        {
            name: _cell(cell, name in numeric)
            for name, cell in zip(header, _row_record(row, header, i).values(), strict=True)
        }
        for i, row in enumerate(rows[1:])
        if row
    ]


def _refuse_repeated(names: list[str], where: str) -> None:
    """A column named twice: which value wins differs between readers, so neither is taken."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PayloadError(422, f"{where} names column {short(name)} twice: send each column once")
        seen.add(name)


# What a JSON number looks like; Python's float() also takes "1_2.5", "  7 " and non-ASCII digits.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _cell(cell: str, numeric: bool) -> Any:
    if cell == "":
        return None
    if not numeric or not _JSON_NUMBER.fullmatch(cell):
        return cell  # a number cell that is not a number: validation says "expected a number"
    return float(cell)


def _count(row: Any) -> int | str:
    return len(row) if isinstance(row, list) else "no list of"
