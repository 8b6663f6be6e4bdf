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

from mlcd.serve.model import Feature


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
        # orjson rejects NaN and Infinity; Python's parser reads them, so they can be
        # reported against the field they were sent in.
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"the body is not valid JSON: {exc}") from None


def _number_problem(feature: Feature, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {_kind(value)}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if feature.low is not None and value < feature.low:
        return f"must be >= {feature.low:g}, got {value:g}"
    if feature.high is not None and value > feature.high:
        return f"must be <= {feature.high:g}, got {value:g}"
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def to_batch(payload: Any, features: list[Feature], max_batch: int) -> Batch:
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise PayloadError(422, [{"loc": ["body"], "msg": "the list is empty: send at least one record"}])
    if len(records) > max_batch:
        raise PayloadError(413, f"a batch of {len(records)} records exceeds the limit of {max_batch}")
    numeric = [f for f in features if f.numeric]
    known = {f.name for f in features}
    numbers = np.empty((len(records), len(numeric)), dtype=np.float32)
    texts: dict[str, list[str]] = {f.name: [] for f in features if not f.numeric}
    errors: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        where = ["body", index] if isinstance(payload, list) else ["body"]
        if not isinstance(record, dict):
            errors.append(
                {"loc": where, "msg": f"expected an object keyed by feature name, got {_kind(record)}"}
            )
            continue
        try:
            # The common case: exactly the numeric features, all valid.
            numbers[index] = [record[f.name] for f in numeric]
            clean = len(record) == len(features) and all(
                _number_problem(f, record[f.name]) is None for f in numeric
            )
        except (KeyError, TypeError, ValueError):
            clean = False
        if clean and not texts:
            continue
        errors.extend(_record_errors(record, features, known, where))
        for name, values in texts.items():
            value = record.get(name)
            values.append(value if isinstance(value, str) else "")
    if errors:
        raise PayloadError(422, errors)
    return Batch(numbers, texts)


def _record_errors(
    record: dict[str, Any], features: list[Feature], known: set[str], where: list[Any]
) -> list:
    errors = []
    for feature in features:
        if feature.name not in record:
            errors.append({"loc": [*where, feature.name], "msg": "field required"})
            continue
        value = record[feature.name]
        problem = (
            _number_problem(feature, value)
            if feature.numeric
            else (None if isinstance(value, str) else f"expected a string, got {_kind(value)}")
        )
        if problem:
            errors.append({"loc": [*where, feature.name], "msg": problem})
    for name in record:
        if name not in known:
            errors.append({"loc": [*where, name], "msg": "unknown field: not a feature of this model"})
    return errors
