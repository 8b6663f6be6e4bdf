"""Turn a /predict body into feature arrays, or into one message per bad field.

Hand-written rather than a pydantic model: the schema is only known at start-up,
and building the float array directly keeps the hot path free of per-record
objects and DataFrames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mlcd.config import FLOAT32_MAX
from mlcd.datetimes import parse, parts_of
from mlcd.serve.asgi import PayloadError, clipped, short
from mlcd.serve.model import Feature, Layout

MAX_ERRORS = 50


@dataclass
class Batch:
    numbers: np.ndarray
    texts: dict[str, list[str]] = field(default_factory=dict)


def parse_json(body: bytes, keys: Callable[[Any], int] | None = None) -> Any:
    """The body as JSON; a 400 for what is not JSON, nested past reason, or has a key twice in one object.

    `keys` counts the keys of the objects a protocol nests (default: an object or a list of them);
    only when the body's colons outnumber them is the whole body walked for a repeated key."""
    if not body:
        raise PayloadError(400, "the body is empty: send a JSON object (one record) or a list of records")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson rejects NaN, Infinity and integers beyond 64 bits; Python's parser reads them,
        # so they can be reported against the field they were sent in.
        return _python_json(body)
    # Every key has one colon outside strings. When the colons outnumber the keys parsed, either
    # a string holds one (a time of day) or a key came twice and orjson kept the last: look closer.
    colons = body.count(b":")
    if colons != (keys or _top_key_count)(payload) and colons != _key_count(payload):
        _python_json(body)
    return payload


def _python_json(body: bytes) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"the body is not valid JSON: {exc}") from None
    except ValueError:  # Python's int-string limit: an integer of more than 4,300 digits
        message = "the body holds a number of thousands of digits: send feature values"
        raise PayloadError(400, message) from None
    except RecursionError:
        raise PayloadError(400, "the body is nested too deeply: send records of feature values") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which of two values a parser keeps differs between parsers (a proxy and this server could
    # disagree), so neither is used.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise PayloadError(400, f"the key {twice!r} appears twice in one object: send each field once")
    return value


def _top_key_count(payload: Any) -> int:
    """Keys of the object or of the list's objects: equal to the colons only when nothing is nested."""
    if isinstance(payload, dict):
        return len(payload)
    return sum(len(item) for item in payload if isinstance(item, dict)) if isinstance(payload, list) else 0


def _key_count(value: Any) -> int:
    """Keys of every object in `value`, however deep (a loop, not recursion: nesting is the client's)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            item = item.values()
        elif type(item) is not list:
            continue
        stack.extend([v for v in item if type(v) is dict or type(v) is list])
    return count


def _number_problem(feature: Feature, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {_kind(value)}"
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return f"beyond float32's range (±{FLOAT32_MAX:.4g}), which the model computes in"
    if not math.isfinite(number):
        return f"expected a finite number, got {value}"
    if abs(number) > FLOAT32_MAX:
        return f"beyond float32's range (±{FLOAT32_MAX:.4g}), which the model computes in: got {number:g}"
    if feature.low is not None and value < feature.low:
        return f"must be >= {feature.low:g}, got {value:g}"
    if feature.high is not None and value > feature.high:
        return f"must be <= {feature.high:g}, got {value:g}"
    return None


def _date_problem(value: Any, parts: tuple[str, ...]) -> tuple[str | None, list[float] | None]:
    # A date-only feature (no hour part) reads the calendar date as written, as preprocess did.
    moment = parse(value, local="hour" not in parts) if isinstance(value, str) else None
    if moment is None:
        shown = short(value) if isinstance(value, str) else _kind(value)
        return f"expected an ISO-8601 date or timestamp (2024-05-31, 2024-05-31T13:45:00), got {shown}", None
    return None, parts_of(moment, parts)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _is_missing(value: Any) -> bool:
    # NaN counts as missing: Python's json (and pandas' to_json) writes gaps that way.
    return value is None or (isinstance(value, float) and math.isnan(value))


_NUMBER_TYPES = frozenset({int, float})


_MAX_MESSAGE = 300


def problem_place(loc: Sequence[Any]) -> tuple[int | None, str | None]:
    """(record index, field name) of a problem's `loc` (["body", 3, "mean_radius"]), each None if absent."""
    parts = loc[1:]
    row = next((p for p in parts if isinstance(p, int)), None)
    name = next((p for p in parts if isinstance(p, str)), None)
    return row, name


class Problems:
    """Bad fields, kept up to MAX_ERRORS and counted beyond: a flood costs a count, not a list."""

    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []
        self.total = 0

    def add(self, loc: list[Any], msg: str) -> None:
        self.total += 1
        if self.total <= MAX_ERRORS:
            # A key of megabytes is named by its start: an answer never grows with the request.
            cut = [clipped(part) if isinstance(part, str) else part for part in loc]
            self.kept.append(
                {"loc": cut, "msg": msg if len(msg) <= _MAX_MESSAGE else msg[:_MAX_MESSAGE] + "..."}
            )

    def detail(self) -> list[dict[str, Any]]:
        rest = self.total - len(self.kept)
        more = [{"loc": ["body"], "msg": f"... and {rest:,} more problems like these"}] if rest else []
        return self.kept + more


def to_batch(payload: Any, layout: Layout, max_batch: int) -> Batch:
    """Validate records keyed by feature name into the model's float matrix and text columns."""
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise PayloadError(422, [{"loc": ["body"], "msg": "the list is empty: send at least one record"}])
    if len(records) > max_batch:
        raise PayloadError(422, f"a batch of {len(records)} records exceeds the limit of {max_batch}")
    if layout.only_numbers and (numbers := _all_numbers(records, layout)) is not None:
        return Batch(numbers)
    features = layout.features
    known = set(layout.names)
    numbers = np.empty((len(records), layout.width), dtype=np.float32)
    texts: dict[str, list[str]] = {f.name: [] for f in features if f.is_text}
    problems = Problems()
    for index, record in enumerate(records):
        where = ["body", index] if isinstance(payload, list) else ["body"]
        if not isinstance(record, dict):
            problems.add(where, f"expected an object keyed by feature name, got {_kind(record)}")
            for values in texts.values():
                values.append("")
            continue
        if len(record) > 2 * len(features) + MAX_ERRORS:
            # A flood of unknown keys: one line for the record, not one per key.
            unknown = sum(name not in known for name in record)
            problems.add(where, f"{unknown:,} unknown fields: send only the model's {len(features)} features")
            for values in texts.values():
                values.append("")
            continue
        for name, msg in _read_record(record, features, numbers[index], texts):
            problems.add([*where, name], msg)
        for name in [name for name in record if name not in known]:
            problems.add([*where, name], "unknown field: not a feature of this model")
    if problems.total:
        raise PayloadError(422, problems.detail())
    return Batch(numbers, texts)


def _all_numbers(records: list[Any], layout: Layout) -> np.ndarray | None:
    """The common case: every record exactly the numeric features, each a number within its bounds
    (which lie within float32's range). None: read record by record, naming each problem."""
    width = len(layout.names)
    try:
        if any(len(record) != width for record in records):
            return None
        rows = list(map(layout.values_of, records))
    except (KeyError, TypeError):  # a missing key, a non-object
        return None
    return _number_matrix(rows, layout)


def numeric_columns(columns: Mapping[str, list[Any]], layout: Layout) -> np.ndarray | None:
    """_all_numbers for values sent as columns (one per feature, all of one length): the float
    matrix, or None when anything needs /predict's record-by-record reading."""
    if not layout.only_numbers or len(columns) != len(layout.names):
        return None
    try:
        ordered = [columns[name] for name in layout.names]
    except KeyError:
        return None
    return _number_matrix(list(zip(*ordered, strict=True)), layout)


def _number_matrix(rows: Sequence[Sequence[Any]], layout: Layout) -> np.ndarray | None:
    """Rows of feature values as the float32 matrix, if every value is a number (bool is not one:
    type, not isinstance) within its feature's bounds; NaN fails both comparisons. A loop, not
    numpy: for the one record most requests carry, numpy's fixed cost per call is most of the time."""
    bounds = layout.bounds
    for row in rows:
        for value, (low, high) in zip(row, bounds, strict=True):
            if type(value) not in _NUMBER_TYPES or not low <= value <= high:
                return None
    return np.array(rows, dtype=np.float32)


def _read_record(
    record: dict[str, Any], features: Sequence[Feature], row: np.ndarray, texts: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """Fill one row of numbers and one text per text feature; (field, message) for each bad field."""
    problems: list[tuple[str, str]] = []
    column = 0
    for feature in features:
        value = record.get(feature.name)
        problem = None
        if _is_missing(value) and feature.may_be_missing:
            filled: Any = feature.missing_text if feature.is_text else [np.nan] * feature.width
        elif feature.name not in record:
            problem, filled = "field required", None
        elif value is None:
            problem, filled = "may not be null: the model's schema does not let this feature be missing", None
        elif feature.numeric:
            problem, filled = _number_problem(feature, value), [value]
        elif feature.is_datetime:
            problem, filled = _date_problem(value, feature.parts)
        elif isinstance(value, str):
            filled = value
        else:
            problem, filled = f"expected a string, got {_kind(value)}", None
        if problem:
            problems.append((feature.name, problem))
        if feature.is_text:
            texts[feature.name].append("" if problem else filled)
        else:
            row[column : column + feature.width] = np.nan if problem else filled
            column += feature.width
    return problems


def record_json_schema(features: list[Feature]) -> dict[str, Any]:
    """The JSON Schema of one record, for the OpenAPI document: names, types, bounds, what may be null."""
    properties: dict[str, Any] = {}
    for feature in features:
        kind: dict[str, Any] = {"type": "number"} if feature.numeric else {"type": "string"}
        if feature.is_datetime:
            kind["description"] = "an ISO-8601 date or timestamp; one with a UTC offset is taken as UTC"
        if feature.low is not None:
            kind["minimum"] = feature.low
        if feature.high is not None:
            kind["maximum"] = feature.high
        properties[feature.name] = {"anyOf": [kind, {"type": "null"}]} if feature.may_be_missing else kind
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in features if not f.may_be_missing],
        "additionalProperties": False,
    }
