"""The Open Inference Protocol (KServe/Triton "v2"): metadata, readiness and infer, one input per feature.

The model's name is its artifact in dvc.yaml (the manifest's `artifact`), its version the
first 12 hex digits of its model hash (the whole hash is accepted too). Requests are turned
into records and validated exactly as /predict's, so every answer equals /predict's.
Inputs may come as JSON or with the binary tensor extension (tritonclient's default);
outputs are JSON, which every v2 client reads.

Outputs: `label` (BYTES, [n]) and `probabilities` (FP32, [n, classes], columns in the order
of the metadata's `classes`) for a classifier; `prediction` (FP32, [n]) for a regressor.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcd.serve.asgi import PayloadError, ascii_length, short
from mlcd.serve.model import BundleModel
from mlcd.serve.payload import parse_json

HEADER_LENGTH = "inference-header-content-length"
# \Z, not $: "$" also matches before a final newline, which made ".../infer%0A" an inference.
_PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<kind>/ready|/infer)?\Z")
NUMERIC_TYPES = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}


@dataclass(frozen=True)
class InferCall:
    records: list[dict[str, Any]]
    request_id: str | None
    outputs: list[str] | None  # the outputs asked for, or None for all


class Protocol:
    def __init__(self, model: BundleModel) -> None:
        self.model = model
        self.name = model.manifest.artifact
        self.version = model.model_hash[:12]

    def match(self, path: str) -> tuple[str, str, str] | None:
        """(kind, method, metrics label) for this model's paths; None for anything else (a 404)."""
        found = _PATH.match(path)
        if not found or not self._is_this_model(found["name"], found["version"]):
            return None
        kind = (found["kind"] or "/metadata").lstrip("/")
        versioned = "/versions/{version}" if found["version"] else ""
        suffix = "" if kind == "metadata" else f"/{kind}"
        return kind, "POST" if kind == "infer" else "GET", f"/v2/models/{{name}}{versioned}{suffix}"

    def not_found(self, path: str) -> str:
        return f"no model at {path}: this server has {self.name!r}, version {self.version!r}"

    def _is_this_model(self, name: str, version: str | None) -> bool:
        return name == self.name and (version is None or version in (self.version, self.model.model_hash))

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mlcd", "version": self.version, "extensions": ["binary_tensor_data"]}

    def model_metadata(self) -> dict[str, Any]:
        inputs = [
            {"name": f.name, "datatype": "FP32" if f.numeric else "BYTES", "shape": [-1, 1]}
            for f in self.model.features
        ]
        classes = self.model.classes
        outputs = (
            [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
            ]
            if self.model.is_classifier
            else [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
        )
        metadata = {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": inputs,
            "outputs": outputs,
        }
        return {**metadata, "classes": classes} if classes else metadata

    def parse(self, body: bytes, header_length: str | None) -> InferCall:
        """An inference request (JSON, or JSON + binary tensors) as records keyed by feature name."""
        binary = b""
        if header_length is not None:
            length = ascii_length(header_length)
            if length is None or length > len(body):
                raise PayloadError(
                    422, f"{HEADER_LENGTH} {short(header_length)} does not fit a {len(body)}-byte body"
                )
            body, binary = body[:length], body[length:]
        request = parse_json(body)
        if (
            not isinstance(request, dict)
            or not isinstance(request.get("inputs"), list)
            or not request["inputs"]
        ):
            raise PayloadError(422, 'send {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
        columns: dict[str, list[Any]] = {}
        offset = 0
        for index, tensor in enumerate(request["inputs"]):
            name, values, offset = _column(tensor, index, binary, offset)
            if name in columns:
                raise PayloadError(422, f"input {short(name)} is sent twice")
            columns[name] = values
        if offset != len(binary):
            raise PayloadError(422, f"{len(binary) - offset} bytes of binary data belong to no input")
        rows = {len(values) for values in columns.values()}
        if len(rows) != 1:
            raise PayloadError(422, f"the inputs have different numbers of rows: {sorted(rows)}")
        records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        _parameters(request, "the request")
        return InferCall(records, _request_id(request), _requested_outputs(request))

    def response(self, call: InferCall, result: dict[str, Any]) -> dict[str, Any]:
        if "labels" in result:
            labels = result["labels"]
            probabilities = [[row[name] for name in self.model.classes] for row in result["probabilities"]]
            outputs = [
                {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels},
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": [len(labels), len(self.model.classes)],
                    "data": [p for row in probabilities for p in row],
                },
            ]
        else:
            values = result["predictions"]
            outputs = [{"name": "prediction", "datatype": "FP32", "shape": [len(values)], "data": values}]
        if call.outputs is not None:
            unknown = set(call.outputs) - {o["name"] for o in outputs}
            if unknown:
                names = ", ".join(o["name"] for o in outputs)
                raise PayloadError(422, f"no output named {sorted(unknown)}; this model has {names}")
            outputs = [o for o in outputs if o["name"] in call.outputs]
        answer = {"model_name": self.name, "model_version": self.version, "outputs": outputs}
        return {**answer, "id": call.request_id} if call.request_id is not None else answer


def _check_datatype(label: str, datatype: str, values: list[Any]) -> None:
    """JSON data must be what its declared datatype can hold: the datatype is the client's own claim,
    and a value it cannot hold (INT8 300, FP16 70000, BYTES 5) means the client and server disagree."""
    for row, value in enumerate(values):
        if value is None:
            continue  # a gap: validation decides whether the feature may be missing
        problem = _datatype_problem(datatype, value)
        if problem:
            raise PayloadError(422, f"{label}: value {row} {problem} (datatype {datatype})")


def _datatype_problem(datatype: str, value: Any) -> str | None:
    if datatype == "BYTES":
        return None if isinstance(value, str) else f"is {type(value).__name__}, not a string"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {type(value).__name__}, not a number"
    if datatype.startswith("FP"):
        limit = float(np.finfo(NUMERIC_TYPES[datatype]).max)  # type: ignore[type-var, arg-type]
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        return None if abs(number) <= limit else f"is beyond {datatype}'s range (±{limit:g})"
    if isinstance(value, float) and not value.is_integer():
        return "is not a whole number"
    bounds = np.iinfo(NUMERIC_TYPES[datatype])  # type: ignore[type-var]
    return (
        None
        if bounds.min <= value <= bounds.max
        else f"is outside {datatype}'s range {bounds.min}..{bounds.max}"
    )


def _column(tensor: Any, index: int, binary: bytes, offset: int) -> tuple[str, list[Any], int]:
    """One input tensor as a list of per-row values, and the binary offset after it."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise PayloadError(422, f"inputs[{index}] is not a tensor with a name")
    name, datatype, shape = tensor["name"], tensor.get("datatype"), tensor.get("shape")
    label = f"input {short(name)}"
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise PayloadError(422, f"{label}: shape must be a list of integers")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 0:
        raise PayloadError(
            422, f"{label}: shape {shape} is not [rows] or [rows, 1]; send one input per feature"
        )
    if not isinstance(datatype, str) or (datatype != "BYTES" and datatype not in NUMERIC_TYPES):
        raise PayloadError(422, f"{label}: datatype {short(str(datatype))} is not BYTES or a number type")
    parameters = _parameters(tensor, label)
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise PayloadError(
                422, f"{label}: binary_data_size {short(str(size))} does not fit the binary data"
            )
        values = _from_binary(label, datatype, binary[offset : offset + size])
        offset += size
    else:
        values = _flatten(tensor.get("data"), label)
        _check_datatype(label, datatype, values)
    if len(values) != shape[0]:
        raise PayloadError(422, f"{label}: {len(values)} values for shape {shape}")
    return name, values, offset


def _from_binary(label: str, datatype: str, data: bytes) -> list[Any]:
    if datatype != "BYTES":
        dtype = np.dtype(NUMERIC_TYPES[datatype]).newbyteorder("<")
        if len(data) % dtype.itemsize:
            raise PayloadError(422, f"{label}: {len(data)} bytes are not whole {datatype} values")
        values: list[Any] = np.frombuffer(data, dtype=dtype).tolist()
        return values
    values, at = [], 0
    while at < len(data):  # each element: a 4-byte little-endian length, then the bytes
        if at + 4 > len(data):
            raise PayloadError(422, f"{label}: the BYTES data is cut short")
        (length,) = struct.unpack_from("<I", data, at)
        if at + 4 + length > len(data):
            raise PayloadError(422, f"{label}: the BYTES data is cut short")
        values.append(data[at + 4 : at + 4 + length].decode("utf-8", "replace"))
        at += 4 + length
    return values


def _flatten(data: Any, label: str) -> list[Any]:
    if not isinstance(data, list):
        raise PayloadError(422, f"{label}: data must be a list (or binary_data_size given)")
    if all(not isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    for value in data:  # [[v], [v], ...]: shape [rows, 1] written nested
        if not isinstance(value, list) or len(value) != 1 or isinstance(value[0], list):
            raise PayloadError(422, f"{label}: data is neither flat nor one value per row")
        flat.append(value[0])
    return flat


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    """The protocol's parameters: a map of names to strings, numbers or booleans."""
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict) or any(isinstance(v, dict | list) for v in parameters.values()):
        raise PayloadError(422, f"{where}: parameters must map names to strings, numbers or booleans")
    return parameters


def _request_id(request: dict[str, Any]) -> str | None:
    value = request.get("id")
    return value if isinstance(value, str) else None


def _requested_outputs(request: dict[str, Any]) -> list[str] | None:
    outputs = request.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise PayloadError(422, 'outputs must be a list of {"name": ...}')
    return [o["name"] for o in outputs]


def error_text(detail: list[dict[str, Any]] | str) -> str:
    """A refusal's detail as one line: the protocol's errors are a single string."""
    if isinstance(detail, list):
        return "; ".join(f"{_where(problem['loc'])}: {problem['msg']}" for problem in detail)
    return detail


def _where(loc: list[Any]) -> str:
    """["body", 3, "mean_radius"] -> "input 'mean_radius', row 3"."""
    parts = loc[1:]
    row = next((p for p in parts if isinstance(p, int)), None)
    name = next((p for p in parts if isinstance(p, str)), None)
    if name is None:
        return f"row {row}" if row is not None else "request"
    return f"input {name!r}" + (f", row {row}" if row is not None else "")
