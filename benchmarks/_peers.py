"""The servers benchmarks/serve.py sets beside mlcd, each serving the bundle's own model.onnx.

- floor: the least a server can do and still answer: a plain ASGI app on the same uvicorn (uvloop,
  httptools) that parses the JSON, builds the float32 matrix and runs the same onnxruntime session
  (one thread), answering labels and probabilities. No validation, limits, metrics or provenance.
  mlcd's goal is a share of its throughput, not of a server that returns a constant.
- MLServer 1.7 with an ONNX runtime: MLServer ships none for ONNX (its runtimes are scikit-learn,
  XGBoost, MLflow...), so this is the custom MLModel its docs describe, decoding with its codecs.
- LitServe: a LitAPI around the same session; LitServe runs it in a worker process behind FastAPI.
- MLflow's scoring server serves the trained scikit-learn pipeline (it has no ONNX flavour that
  serves): made in serve.py.

Each peer gets its own venv under .bench (uv), so none of them enters the project's lock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FLOOR_APP = """
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson

from mlcd.bundle import open_bundle

bundle = open_bundle(Path(os.environ["FLOOR_BUNDLE"]))
NAMES = [f.name for f in bundle.schema.features]
CLASSES = bundle.classes
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(str(bundle.model_file), options, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name


def run(matrix):
    labels, proba = session.run(None, {INPUT: matrix})
    return [str(label) for label in labels], proba.tolist()


def predict(body):
    record = orjson.loads(body)
    labels, proba = run(np.array([[record[n] for n in NAMES]], dtype=np.float32))
    return {"labels": labels, "probabilities": [dict(zip(CLASSES, row)) for row in proba]}


def infer(body):
    columns = {t["name"]: t["data"] for t in orjson.loads(body)["inputs"]}
    labels, proba = run(np.array([columns[n] for n in NAMES], dtype=np.float32).T)
    outputs = [
        {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels},
        {"name": "probabilities", "datatype": "FP32", "shape": [len(labels), len(CLASSES)],
         "data": [p for row in proba for p in row]},
    ]
    return {"model_name": "model", "outputs": outputs}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    path = scope["path"]
    answer = predict if path == "/predict" else infer if path.endswith("/infer") else lambda b: {}
    body = orjson.dumps(answer(b"".join(chunks)))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""

MLSERVER_RUNTIME = """
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        self.names, self.classes = extra["features"], extra["classes"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        columns = {i.name: NumpyCodec.decode_input(i).reshape(-1) for i in payload.inputs}
        matrix = np.stack([columns[n] for n in self.names], axis=1).astype(np.float32)
        labels, proba = self.session.run(None, {self.input: matrix})
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                StringCodec.encode_output("label", [str(label) for label in labels]),
                NumpyCodec.encode_output("probabilities", proba),
            ],
        )
"""

LITSERVE_APP = """
import json
import sys

import numpy as np
import onnxruntime as ort
import litserve as ls


class OnnxAPI(ls.LitAPI):
    def setup(self, device):
        spec = json.loads(sys.argv[2])
        self.names, self.classes = spec["features"], spec["classes"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(spec["model"], options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def decode_request(self, request):
        return np.array([[request[n] for n in self.names]], dtype=np.float32)

    def predict(self, matrix):
        return self.session.run(None, {self.input: matrix})

    def encode_response(self, output):
        labels, proba = output
        return {
            "labels": [str(label) for label in labels],
            "probabilities": [dict(zip(self.classes, row)) for row in proba.tolist()],
        }


if __name__ == "__main__":
    server = ls.LitServer(OnnxAPI(), accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", generate_client_file=False)
"""


def venv(work: Path, name: str, packages: list[str]) -> Path:
    """A venv of its own under `work` holding `packages`; its python."""
    home = work / f"{name}-venv"
    python = home / "bin" / "python"
    if not python.exists():
        subprocess.run(["uv", "venv", "-q", str(home), "-p", sys.executable], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), *packages], check=True)
    return python


def mlserver_repository(
    work: Path, model: Path, features: list[str], classes: list[str], ports: tuple[int, int, int]
) -> Path:
    """An MLServer folder: settings.json (one process, loopback) and the model's settings and runtime."""
    folder = work / "mlserver"
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "model" / "onnx_runtime.py").write_text(MLSERVER_RUNTIME)  # MLServer imports from here
    http, grpc, metrics = ports
    settings = {
        "host": "127.0.0.1",
        "http_port": http,
        "grpc_port": grpc,
        "metrics_port": metrics,
        "parallel_workers": 0,  # inference in the server's own process, like the others
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "model",
        "implementation": "onnx_runtime.OnnxModel",
        "parameters": {"uri": str(model), "extra": {"features": features, "classes": classes}},
    }
    (folder / "model" / "model-settings.json").write_text(json.dumps(model_settings))
    return folder
