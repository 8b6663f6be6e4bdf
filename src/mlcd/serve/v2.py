"""The Open Inference Protocol (KServe/Triton "v2"): metadata, readiness and infer, one input per feature.

The model's name is its artifact in dvc.yaml (the manifest's `artifact`), its version the
first 12 hex digits of its model hash (the whole hash is accepted too). Requests are turned
into records and validated exactly as /predict's, so every answer equals /predict's.
Inputs may come as JSON or with the binary tensor extension (tritonclient's default);
outputs are JSON, which every v2 client reads.

Tensors are validated as columns: when every input is a feature with numbers in its bounds
(the common case), the float matrix is built from the columns directly. Anything else goes
through records and /predict's validation, which names each problem.

Outputs: `label` (BYTES, [n]) and `probabilities` (FP32, [n, classes], columns in the order
of the metadata's `classes`) for a classifier; `prediction` (FP32, [n]) for a regressor.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcd.serve.asgi import PayloadError, ascii_length, short
from mlcd.serve.model import BundleModel, Layout
from mlcd.serve.payload import Batch, numeric_columns, parse_json, problem_place, to_batch

HEADER_LENGTH = "inference-header-content-length"
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


DATATYPES = frozenset({"BYTES", *NUMERIC_TYPES})
# JSON data of these datatypes needs no check of its own once it is within a feature's bounds,
# which lie within float32's range. Binary data always fits its datatype.
_WIDE_TYPES = frozenset({"FP32", "FP64"})


@dataclass(frozen=True)
class InferCall:
    columns: dict[str, list[Any]]  # values by input name, in the request's order, all of one length
    json_datatypes: dict[str, str]  # inputs sent as JSON: the datatype their values must fit
    request_id: str | None
    outputs: list[str] | None  # the outputs asked for, or None for all

    def batch(self, layout: Layout, max_batch: int) -> Batch:
        """The model's inputs; a PayloadError naming the first problem, as /predict's would."""
        rows = len(next(iter(self.columns.values())))
        if 0 < rows <= max_batch and _WIDE_TYPES.issuperset(self.json_datatypes.values()):
            numbers = numeric_columns(self.columns, layout)
            if numbers is not None:
                return Batch(numbers)
        for name, datatype in self.json_datatypes.items():
            if list in map(type, self.columns[name]):  # [[v], [v], ...], which parse took unchecked
                self.columns[name] = _unnest(self.columns[name], name)
            _check_datatype(_label(name), datatype, self.columns[name])
        values = self.columns.values()
        records = [dict(zip(self.columns, row, strict=True)) for row in zip(*values, strict=True)]
        return to_batch(records, layout, max_batch)


# What a request of JSON tensors alone says beyond its tensors (no id, no outputs asked for): the
# call serve/fast_json.py's reading stands for.
PLAIN_CALL = InferCall({}, {}, None, None)


class Protocol:
    def __init__(self, model: BundleModel) -> None:
        self.model = model
        self.name = model.manifest.artifact
        self.version = model.model_hash[:12]

    def paths(self) -> list[tuple[str, str, str, str]]:
        """(kind, method, path, metrics label) of each of this model's paths: unversioned, or with its
        version or whole hash. Anything else under /v2/models/ is a 404."""
        found = []
        for version in (None, self.version, self.model.model_hash):
            base = f"/v2/models/{self.name}" + (f"/versions/{version}" if version else "")
            template = "/v2/models/{name}" + ("/versions/{version}" if version else "")
            for kind, method, suffix in (
                ("metadata", "GET", ""),
                ("ready", "GET", "/ready"),
                ("infer", "POST", "/infer"),
            ):
                found.append((kind, method, base + suffix, template + suffix))
        return found

    def not_found(self, path: str) -> str:
        return f"no model at {path}: this server has {self.name!r}, version {self.version!r}"

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
        request = parse_json(body, _tensor_key_count)
        if (
            not isinstance(request, dict)
            or not isinstance(request.get("inputs"), list)
            or not request["inputs"]
        ):
            raise PayloadError(422, 'send {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
        columns: dict[str, list[Any]] = {}
        json_datatypes: dict[str, str] = {}
        offset = 0
        rows: set[int] = set()
        for index, tensor in enumerate(request["inputs"]):
            if type(tensor) is dict and len(tensor) == 4:
                # The common tensor, checked inline (a request carries one per feature): exactly a
                # name, a datatype, shape [rows] and that many JSON values. Whether the values are
                # flat is left to InferCall.batch, whose fast path checks every value's type anyway.
                name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
                datatype = tensor.get("datatype")
                if (
                    type(name) is str
                    and type(data) is list
                    and type(shape) is list
                    and len(shape) == 1
                    and type(shape[0]) is int
                    and shape[0] == len(data)
                    and type(datatype) is str  # a list or an object is unhashable
                    and datatype in DATATYPES
                    and name not in columns
                ):
                    columns[name] = data
                    json_datatypes[name] = datatype
                    rows.add(shape[0])
                    continue
            name, datatype, values, size = _column(tensor, index, binary, offset)
            if name in columns:
                raise PayloadError(422, f"{_label(name)} is sent twice")
            columns[name] = values
            rows.add(len(values))
            if size is None:
                json_datatypes[name] = datatype
            else:
                offset += size
        if offset != len(binary):
            raise PayloadError(422, f"{len(binary) - offset} bytes of binary data belong to no input")
        if len(rows) != 1:
            raise PayloadError(422, f"the inputs have different numbers of rows: {sorted(rows)}")
        _parameters(request, "the request")
        return InferCall(columns, json_datatypes, _request_id(request), _requested_outputs(request))

    def response(self, call: InferCall, result: dict[str, Any], request_id: str) -> dict[str, Any]:
        """The protocol's answer; `id` echoes the client's, the server's request id is a parameter."""
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
        answer = {
            "model_name": self.name,
            "model_version": self.version,
            "outputs": outputs,
            "parameters": {"request_id": request_id},
        }
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


def _label(name: str) -> str:
    return f"input {short(name)}"


def _column(tensor: Any, index: int, binary: bytes, offset: int) -> tuple[str, str, list[Any], int | None]:
    """One input tensor: its name, datatype, per-row values and, for binary data, its size in bytes.
    Written for the common tensor ([rows] of JSON numbers): a request carries one per feature."""
    if type(tensor) is not dict or type(name := tensor.get("name")) is not str:
        raise PayloadError(422, f"inputs[{index}] is not a tensor with a name")
    shape = tensor.get("shape")
    if type(shape) is list and len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0:
        rows = shape[0]
    else:
        rows = _rows(name, shape)
    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        shown = short(str(datatype))
        raise PayloadError(422, f"{_label(name)}: datatype {shown} is not BYTES or a number type")
    size = _parameters(tensor, _label(name)).get("binary_data_size") if "parameters" in tensor else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise PayloadError(
                422, f"{_label(name)}: binary_data_size {short(str(size))} does not fit the binary data"
            )
        values = _from_binary(_label(name), datatype, binary[offset : offset + size])
    else:
        data = tensor.get("data")
        if type(data) is not list:
            raise PayloadError(422, f"{_label(name)}: data must be a list (or binary_data_size given)")
        values = _unnest(data, name) if list in map(type, data) else data
    if len(values) != rows:
        raise PayloadError(422, f"{_label(name)}: {len(values)} values for shape {shape}")
    return name, datatype, values, size


def _rows(name: str, shape: Any) -> int:
    """The rows of a shape other than [rows]: [rows, 1], or a 422 saying what is wrong with it."""
    if type(shape) is not list or not all(type(d) is int for d in shape):
        raise PayloadError(422, f"{_label(name)}: shape must be a list of integers")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 0:
        raise PayloadError(
            422, f"{_label(name)}: shape {shape} is not [rows] or [rows, 1]; send one input per feature"
        )
    rows: int = shape[0]
    return rows


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


def _unnest(data: list[Any], name: str) -> list[Any]:
    """[[v], [v], ...] (shape [rows, 1] written nested) as [v, v, ...]."""
    flat: list[Any] = []
    for value in data:
        if type(value) is not list or len(value) != 1 or type(value[0]) is list:
            raise PayloadError(422, f"{_label(name)}: data is neither flat nor one value per row")
        flat.append(value[0])
    return flat


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    """The protocol's parameters: a map of names to strings, numbers or booleans."""
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict) or any(isinstance(v, dict | list) for v in parameters.values()):
        raise PayloadError(422, f"{where}: parameters must map names to strings, numbers or booleans")
    return parameters


def _tensor_key_count(request: Any) -> int:
    """Keys of a request as the protocol nests them: its own, its inputs' and outputs', and their
    parameters'. parse_json compares them with the body's colons to find a key sent twice."""
    if type(request) is not dict:
        return 0
    count = len(request) + _parameter_count(request)
    for group in (request.get("inputs"), request.get("outputs")):
        if type(group) is list:
            for tensor in group:
                if type(tensor) is dict:
                    count += len(tensor)
                    if "parameters" in tensor:
                        count += _parameter_count(tensor)
    return count


def _parameter_count(holder: dict[str, Any]) -> int:
    parameters = holder.get("parameters")
    return len(parameters) if type(parameters) is dict else 0


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
    row, name = problem_place(loc)
    if name is None:
        return f"row {row}" if row is not None else "request"
    return f"input {name!r}" + (f", row {row}" if row is not None else "")
