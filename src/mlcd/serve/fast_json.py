"""The common prediction bodies read by compiled code: msgspec decodes and checks them in one pass.

Most requests are the plain case: records of exactly the model's numeric features, each a number
within its bounds (/predict), or one flat FP32/FP64 tensor per feature (/v2 infer). Reading those
with orjson and then checking every value in Python was most of what mlcd did beyond the model; a
msgspec decoder built from the bundle's schema parses, type-checks and bounds-checks a record in C.

It only ever says yes: a body it refuses, or whose colons show a key sent twice (decoders differ on
which of two values they keep), returns None, and the general reader (payload.parse_json and
to_batch, v2.Protocol.parse) reads it again and names each problem. Answers and messages are the
general reader's; this path is only faster.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from mlcd.serve.model import Layout
from mlcd.serve.payload import numeric_columns

_astuple = msgspec.structs.astuple


def predict_numbers(body: bytes, layout: Layout, max_batch: int) -> np.ndarray | None:
    """The float matrix of a /predict body of one record or a list of them, or None."""
    decoder = _decoder_of(layout)
    if decoder is None:
        return None
    try:
        decoded = decoder.decode(body)
    except msgspec.DecodeError:  # its ValidationError too
        return None
    if type(decoded) is not list:
        decoded = [decoded]
    # Every key has its colon and values are numbers: more colons than keys means a key came twice.
    if not 0 < len(decoded) <= max_batch or body.count(b":") != len(decoded) * len(layout.names):
        return None
    return np.array([_astuple(record) for record in decoded], dtype=np.float32)


# The decoder of each layout served, built once and found by the layout's identity: hashing a
# layout's names and bounds per request cost more than the lookup it served.
_DECODERS: dict[int, tuple[Layout, Any]] = {}


def _decoder_of(layout: Layout) -> Any:
    known = _DECODERS.get(id(layout))
    if known is None or known[0] is not layout:
        decoder = _record_decoder(layout.names, layout.bounds) if layout.only_numbers else None
        known = _DECODERS[id(layout)] = (layout, decoder)
    return known[1]


def _record_decoder(names: tuple[str, ...], bounds: tuple[tuple[float, float], ...]) -> Any:
    """A decoder of one record or a list of them: every feature required, a number (not a bool)
    within its bounds, no other key. None where a name holds a colon (the count above needs none) or
    a character msgspec will not match a key on: the general reader reads those layouts."""
    if any(":" in name for name in names):
        return None
    fields = [(f"f{index}", _number(low, high)) for index, (low, high) in enumerate(bounds)]
    rename = {f"f{index}": name for index, name in enumerate(names)}
    try:
        record = msgspec.defstruct("Record", fields, rename=rename, forbid_unknown_fields=True)
    except ValueError:  # a name msgspec cannot match (a quote, a backslash, a control character)
        return None
    return msgspec.json.Decoder(record | list[record])  # type: ignore[valid-type]


_INT64 = 2**63


def _number(low: float, high: float) -> Any:
    """A JSON number within [low, high], compared as the general reader compares it: an integer
    exactly (as a float, one past a bound could round onto it), within int64 (msgspec's integers;
    a longer one is left to the general reader), a float as a float."""
    whole = msgspec.Meta(ge=max(math.ceil(low), -_INT64), le=min(math.floor(high), _INT64 - 1))
    return Annotated[int, whole] | Annotated[float, msgspec.Meta(ge=low, le=high)]


class _Tensor(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: Annotated[list[int], msgspec.Meta(min_length=1, max_length=1)]
    datatype: Literal["FP32", "FP64"]  # the types whose JSON values need no check beyond bounds
    data: list[float]


class _Inference(msgspec.Struct, forbid_unknown_fields=True):
    inputs: Annotated[list[_Tensor], msgspec.Meta(min_length=1)]


_INFERENCE = msgspec.json.Decoder(_Inference)
_TENSOR_KEYS = len(_Tensor.__struct_fields__)  # a plain tensor's keys, each with its colon


def v2_numbers(body: bytes, layout: Layout, max_batch: int) -> np.ndarray | None:
    """The float matrix of a /v2 inference body of one flat JSON tensor per feature, shape [rows],
    and nothing else (no id, parameters or outputs), or None."""
    if not layout.only_numbers:
        return None
    try:
        inputs = _INFERENCE.decode(body).inputs
    except msgspec.DecodeError:
        return None
    if body.count(b":") != 1 + _TENSOR_KEYS * len(inputs):  # a key twice, or a colon in a name
        return None
    rows = len(inputs[0].data)
    columns = {tensor.name: tensor.data for tensor in inputs}
    if (
        not 0 < rows <= max_batch
        or len(columns) != len(inputs)
        or any(tensor.shape[0] != rows or len(tensor.data) != rows for tensor in inputs)
    ):
        return None
    return numeric_columns(columns, layout)
