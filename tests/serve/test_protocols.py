"""The standard protocols against a real `mlcd serve`, driven by their own clients.

Open Inference Protocol v2: tritonclient's InferenceServerClient (binary tensors, its
default, and JSON). MLflow: request bodies written by MLflow's own serializer
(`convert_input_example_to_serving_input`) and by pandas' to_csv. Every answer must equal
/predict's for the same rows.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from mlflow.models import convert_input_example_to_serving_input

from .servers import served

ROWS = 5


# Real server processes on loopback: seconds each, so outside the fast tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(built_project):
    with served(built_project / "models" / "bundle") as (port, _):
        yield port


@pytest.fixture(scope="module")
def frame(built_project) -> pd.DataFrame:
    test = pd.read_parquet(built_project / "data" / "processed" / "test.parquet")
    return test.drop(columns="diagnosis").head(ROWS).reset_index(drop=True)


def post(port: int, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers={"content-type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def expected(server, frame) -> dict:
    status, answer = post(server, "/predict", frame.to_json(orient="records").encode())
    assert status == 200
    return answer


def test_v2_metadata_and_readiness_through_tritonclient(server, frame):
    client = triton.InferenceServerClient(f"127.0.0.1:{server}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("model")
    metadata = client.get_model_metadata("model")
    assert metadata["name"] == "model" and metadata["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in metadata["inputs"]] == list(frame.columns)
    assert [o["name"] for o in metadata["outputs"]] == ["label", "probabilities"]
    version = metadata["versions"][0]
    assert client.is_model_ready("model", model_version=version)
    assert not client.is_model_ready("model", model_version="0" * 12)
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary tensors", "json tensors"])
def test_v2_infer_through_tritonclient_equals_predict(server, frame, expected, binary):
    client = triton.InferenceServerClient(f"127.0.0.1:{server}")
    inputs = []
    for name in frame.columns:
        tensor = triton.InferInput(name, [ROWS, 1], "FP32")
        tensor.set_data_from_numpy(frame[[name]].to_numpy(np.float32), binary_data=binary)
        inputs.append(tensor)
    result = client.infer("model", inputs, request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").tolist()]
    assert labels == expected["labels"]
    classes = client.get_model_metadata("model")["classes"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (ROWS, len(classes))
    for row, answer in zip(probabilities.tolist(), expected["probabilities"], strict=True):
        assert dict(zip(classes, row, strict=True)) == pytest.approx(answer, rel=1e-6)


def test_v2_asked_for_one_output_and_a_bad_input_gets_the_protocol_error(server, frame):
    client = triton.InferenceServerClient(f"127.0.0.1:{server}")
    inputs = []
    for name in frame.columns:
        tensor = triton.InferInput(name, [ROWS], "FP64")
        values = frame[name].to_numpy(np.float64).copy()
        if name == "mean_radius":
            values[2] = -1.0  # below the schema's bound
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    with pytest.raises(triton.InferenceServerException) as raised:
        client.infer("model", inputs, outputs=[triton.InferRequestedOutput("label", binary_data=False)])
    assert "input 'mean_radius', row 2: must be >= 0" in str(raised.value)


def _mlflow_bodies(frame: pd.DataFrame) -> dict[str, bytes]:
    with_gap = frame.astype(float)
    split = convert_input_example_to_serving_input(with_gap)  # {"dataframe_split": ...}
    records = json.dumps({"dataframe_records": frame.to_dict(orient="records")})
    instances = json.dumps({"instances": frame.to_dict(orient="records")})
    inputs = convert_input_example_to_serving_input(frame.to_dict(orient="list"))  # {"inputs": {col: [..]}}
    rows = json.dumps({"inputs": frame.to_numpy().tolist()})  # by position, in the schema's order
    return {
        "dataframe_split": split.encode(),
        "dataframe_records": records.encode(),
        "instances": instances.encode(),
        "inputs (columns)": inputs.encode(),
        "inputs (rows)": rows.encode(),
    }


@pytest.mark.parametrize(
    "shape", ["dataframe_split", "dataframe_records", "instances", "inputs (columns)", "inputs (rows)", "csv"]
)
def test_mlflow_invocations_equal_predict(server, frame, expected, shape):
    if shape == "csv":
        status, answer = post(server, "/invocations", frame.to_csv(index=False).encode(), "text/csv")
    else:
        assert json.loads(_mlflow_bodies(frame)[shape])  # MLflow's serializer wrote valid bodies
        status, answer = post(server, "/invocations", _mlflow_bodies(frame)[shape])
    assert status == 200, answer
    assert answer["predictions"] == expected["labels"]
    if shape == "csv":  # decimal text: the same numbers as far as float32 goes
        for row, want in zip(answer["probabilities"], expected["probabilities"], strict=True):
            assert row == pytest.approx(want, rel=1e-5)
    else:
        assert answer["probabilities"] == expected["probabilities"]


def test_mlflow_bad_bodies_get_a_clear_4xx(server, frame):
    record = frame.iloc[0].to_dict()
    cases = [
        (b'{"dataframe_records": [], "instances": []}', "application/json", 422, "send exactly one of"),
        (b'{"records": []}', "application/json", 422, "send exactly one of"),
        (
            json.dumps({"dataframe_records": [record], "params": {"x": 1}}).encode(),
            "application/json",
            422,
            "no params",
        ),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}',
            "application/json",
            422,
            "row 0 has 2 values",
        ),
        (b"a,b\n1,2\n", "text/csv", 422, "unknown field"),
        (b"\xff\xfe", "text/csv", 400, "not UTF-8"),
        (b"x", "application/parquet", 415, "send application/json or text/csv"),
    ]
    for body, content_type, status, message in cases:
        got, answer = post(server, "/invocations", body, content_type)
        assert got == status, (body, answer)
        assert message in json.dumps(answer), answer


def test_the_csv_reads_empty_cells_as_missing(server, frame):
    gappy = frame.copy()
    gappy.loc[0, "mean_radius"] = math.nan  # not nullable in this schema: named as missing
    status, answer = post(server, "/invocations", gappy.to_csv(index=False).encode(), "text/csv")
    assert status == 422
    assert {
        "loc": ["body", 0, "mean_radius"],
        "msg": "may not be null: the model's schema does not let this feature be missing",
    } in answer["detail"]
