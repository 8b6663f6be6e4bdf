"""Turn a /predict body into feature arrays, or into one message per bad field.

Hand-written rather than a pydantic model: the schema is only known at start-up,
and building the float array directly keeps the hot path free of per-record
objects and DataFrames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mlcd.config import FLOAT32_MAX
from mlcd.datetimes import parse, parts_of
from mlcd.serve.model import Feature

MAX_ERRORS = 50


class PayloadError(Exception):
    """The request cannot be served; `status` and `detail` form the response."""

    def __init__(self, status: int, detail: list[dict[str, Any]] | str) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


@dataclass
class Batch:
    numbers: np.ndarray
    texts: dict[str, list[str]] = field(default_factory=dict)


def parse_json(body: bytes) -> Any:
    if not body:
        raise PayloadError(400, "the body is empty: send a JSON object (one record) or a list of records")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        # orjson rejects NaN, Infinity and integers beyond 64 bits; Python's parser reads them,
        # so they can be reported against the field they were sent in.
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(400, "the body is nested too deeply: send records of feature values") from None


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


def _date_problem(value: Any) -> tuple[str | None, list[float] | None]:
    moment = parse(value) if isinstance(value, str) else None
    if moment is None:
        shown = repr(value) if isinstance(value, str) else _kind(value)
        return f"expected an ISO-8601 date or timestamp (2024-05-31, 2024-05-31T13:45:00), got {shown}", None
    return None, parts_of(moment)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _is_missing(value: Any) -> bool:
    # NaN counts as missing: Python's json (and pandas' to_json) writes gaps that way.
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_batch(payload: Any, features: list[Feature], max_batch: int) -> Batch:
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise PayloadError(422, [{"loc": ["body"], "msg": "the list is empty: send at least one record"}])
    if len(records) > max_batch:
        raise PayloadError(413, f"a batch of {len(records)} records exceeds the limit of {max_batch}")
    numeric = [f for f in features if f.numeric]
    only_numbers = len(numeric) == len(features)
    known = {f.name for f in features}
    numbers = np.empty((len(records), sum(f.width for f in features)), dtype=np.float32)
    texts: dict[str, list[str]] = {f.name: [] for f in features if f.is_text}
    errors: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        where = ["body", index] if isinstance(payload, list) else ["body"]
        if not isinstance(record, dict):
            errors.append(
                {"loc": where, "msg": f"expected an object keyed by feature name, got {_kind(record)}"}
            )
            for values in texts.values():
                values.append("")
            continue
        if only_numbers:
            try:
                # The common case: exactly the numeric features, all present and valid.
                numbers[index] = [record[f.name] for f in numeric]
                if len(record) == len(features) and all(
                    _number_problem(f, record[f.name]) is None for f in numeric
                ):
                    continue
            except (KeyError, TypeError, ValueError, OverflowError):
                pass
        problems = _read_record(record, features, numbers[index], texts)
        unknown = [name for name in record if name not in known]
        problems += [(name, "unknown field: not a feature of this model") for name in unknown]
        errors.extend({"loc": [*where, name], "msg": msg} for name, msg in problems)
    if errors:
        raise PayloadError(422, capped(errors))
    return Batch(numbers, texts)


def capped(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first MAX_ERRORS problems and a count of the rest: a bad request gets a short answer."""
    if len(errors) <= MAX_ERRORS:
        return errors
    rest = len(errors) - MAX_ERRORS
    return [*errors[:MAX_ERRORS], {"loc": ["body"], "msg": f"... and {rest:,} more problems like these"}]


def _read_record(
    record: dict[str, Any], features: list[Feature], row: np.ndarray, texts: dict[str, list[str]]
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
            problem, filled = _date_problem(value)
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
