"""The HTTP API on a real bundle from the pipeline: answers, bad payloads, metrics, tampering."""

import json
import math
import shutil

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mlcd.errors import BundleError
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.server import load

from ..helpers import PROJECT_ROOT, rewritten_bundle, run

MAX_BATCH = 200
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def bundle(built_project):
    return built_project / "models" / "bundle"


@pytest.fixture(scope="module")
def client(bundle):
    settings = ServeSettings(bundle=bundle, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY)
    with TestClient(create_app(load(settings), settings)) as client:
        yield client


@pytest.fixture(scope="module")
def held_out_records(built_project):
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet")
    return frame.drop(columns="diagnosis").to_dict(orient="records")


@pytest.fixture
def record(held_out_records):
    return dict(held_out_records[0])


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/predict", content=data, headers={"content-type": content_type})


def test_predictions_equal_in_process_onnx(client, bundle, held_out_records):
    response = post(client, held_out_records)
    assert response.status_code == 200
    body = response.json()
    session = ort.InferenceSession(str(bundle / "model.onnx"))
    names = [f["name"] for f in json.loads((bundle / "schema.json").read_text())["features"]]
    feeds = {"features": np.array([[r[n] for n in names] for r in held_out_records], dtype=np.float32)}
    labels, proba = session.run(None, feeds)
    assert body["labels"] == labels.tolist()
    got = np.array([[p["benign"], p["malignant"]] for p in body["probabilities"]])
    np.testing.assert_allclose(got, proba, rtol=0, atol=1e-7)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert body["model"] == {"hash": manifest["model_hash"], "git_commit": None}  # MLCD_GIT_COMMIT unset


def test_one_record_is_a_batch_of_one(client, record):
    body = post(client, record).json()
    assert len(body["labels"]) == 1 and set(body["probabilities"][0]) == {"benign", "malignant"}


def test_integers_are_numbers(client, record):
    record["mean_radius"] = 14
    assert post(client, record).status_code == 200


def test_health_ready_version(client, bundle):
    assert client.get("/health").json() == {"status": "ok"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert client.get("/ready").json() == {"status": "ready", "model_hash": manifest["model_hash"]}
    version = client.get("/version").json()
    assert version == {**manifest, "git_commit": None}
    assert {"model_hash", "data", "git_commit", "params", "metrics"} <= set(version)


def _bad(record):
    """(name, body, content type, status, expected message fragment, location)."""
    nested = {**record, "mean_radius": {"value": [1, {"x": None}]}}
    return [
        (
            "malformed JSON",
            b'{"mean_radius": 1,',
            "application/json",
            400,
            "the body is not valid JSON",
            None,
        ),
        ("empty body", b"", "application/json", 400, "the body is empty", None),
        ("wrong content type", json.dumps(record), "text/plain", 415, "send JSON with Content-Type", None),
        (
            "missing field",
            {k: v for k, v in record.items() if k != "mean_area"},
            None,
            422,
            "field required",
            ["body", "mean_area"],
        ),
        (
            "extra field",
            {**record, "patient_name": 3},
            None,
            422,
            "unknown field: not a feature of this model",
            ["body", "patient_name"],
        ),
        (
            "string for number",
            {**record, "mean_texture": "19.2"},
            None,
            422,
            "expected a number, got a string",
            ["body", "mean_texture"],
        ),
        (
            "boolean for number",
            {**record, "mean_texture": True},
            None,
            422,
            "expected a number, got a boolean",
            ["body", "mean_texture"],
        ),
        (
            "null",
            {**record, "mean_texture": None},
            None,
            422,
            "may not be null: the model's schema does not let this feature be missing",
            ["body", "mean_texture"],
        ),
        (
            "NaN",
            json.dumps({**record, "worst_area": math.nan}),
            "application/json",
            422,
            "expected a finite number, got nan",
            ["body", "worst_area"],
        ),
        (
            "Infinity",
            json.dumps({**record, "worst_area": -math.inf}),
            "application/json",
            422,
            "expected a finite number, got -inf",
            ["body", "worst_area"],
        ),
        (
            "out of range",
            {**record, "mean_radius": -2.5},
            None,
            422,
            "must be >= 0, got -2.5",
            ["body", "mean_radius"],
        ),
        ("empty list", [], None, 422, "the list is empty: send at least one record", ["body"]),
        ("nested garbage", nested, None, 422, "expected a number, got an object", ["body", "mean_radius"]),
        (
            "list of non-records",
            [record, [1, 2], "x"],
            None,
            422,
            "expected an object keyed by feature name, got a list",
            ["body", 1],
        ),
        (
            "batch over the limit",
            [record] * (MAX_BATCH + 1),
            None,
            422,
            f"a batch of {MAX_BATCH + 1} records exceeds the limit of {MAX_BATCH}",
            None,
        ),
        ("huge body", b"[" + b" " * MAX_BODY + b"]", "application/json", 413, "the limit is 1,048,576", None),
    ]


@pytest.mark.parametrize("case", range(16), ids=[c[0] for c in _bad({"mean_radius": 1})])
def test_bad_payloads_get_a_clear_4xx(client, record, case):
    name, body, content_type, status, message, location = _bad(record)[case]
    response = post(client, body, content_type or "application/json")
    assert response.status_code == status, (name, response.text)
    detail = response.json()["detail"]
    if location is None:
        assert message in detail
    else:
        assert {"loc": location, "msg": message} in detail


def test_every_bad_field_of_every_record_is_reported(client, record):
    second = {**record, "mean_radius": "x"}
    second.pop("worst_area")
    detail = post(client, [record, second]).json()["detail"]
    assert detail == [
        {"loc": ["body", 1, "mean_radius"], "msg": "expected a number, got a string"},
        {"loc": ["body", 1, "worst_area"], "msg": "field required"},
    ]


def test_wrong_method(client):
    response = client.get("/predict")
    assert response.status_code == 405


def test_metrics_count_known_requests(bundle, record):
    settings = ServeSettings(bundle=bundle)
    with TestClient(create_app(load(settings), settings)) as fresh:
        before = _samples(fresh)
        for _ in range(3):
            assert post(fresh, [record, record]).status_code == 200
        post(fresh, {"bad": 1})
        fresh.get("/nowhere")
        after = _samples(fresh)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("mlcd_requests_total", endpoint="/predict", method="POST", status="200") == 3
    assert delta("mlcd_requests_total", endpoint="/predict", method="POST", status="422") == 1
    assert delta("mlcd_requests_total", endpoint="other", method="GET", status="404") == 1
    label = post_label(bundle, record)
    assert delta("mlcd_predictions_total", label=label) == 6
    assert delta("mlcd_request_duration_seconds_count", endpoint="/predict") == 4
    manifest = json.loads((bundle / "manifest.json").read_text())
    info = {k: v for k, v in after.items() if k[0] == "mlcd_model_info"}
    assert any(
        dict(labels)["model_hash"] == manifest["model_hash"] and value == 1
        for (_, labels), value in info.items()
    )


def post_label(bundle, record):
    settings = ServeSettings(bundle=bundle)
    model = load(settings)
    from mlcd.serve.payload import to_batch

    batch = to_batch(record, model.layout, 1)
    return model.predict(batch.numbers, batch.texts)["labels"][0]


def _samples(client):
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_tampered_bundle_refuses_to_start(bundle, tmp_path):
    tampered = tmp_path / "bundle"
    shutil.copytree(bundle, tampered)
    model = bytearray((tampered / "model.onnx").read_bytes())
    model[-1] ^= 0xFF
    (tampered / "model.onnx").write_bytes(bytes(model))
    with pytest.raises(BundleError, match="does not match its manifest"):
        load(ServeSettings(bundle=tampered))
    done = run(["mlcd", "serve", "--bundle", str(tampered), "--port", "1"], tmp_path, check=False)
    assert done.returncode == 2
    assert "model.onnx: sha256" in done.stderr and "manifest says" in done.stderr


def test_bundle_whose_examples_disagree_refuses_to_start(bundle, tmp_path):
    def flip(files):
        labels = files["examples.json"]["labels"]
        labels[:] = ["malignant" if x == "benign" else "benign" for x in labels]

    broken = rewritten_bundle(bundle, tmp_path / "bundle", flip)
    with pytest.raises(BundleError, match="does not reproduce the example answers"):
        load(ServeSettings(bundle=broken))


def test_serving_imports_no_training_stack():
    code = (
        "import sys, mlcd.serve.server, mlcd.cli; "
        "bad = [m for m in ('sklearn', 'pandas', 'scipy', 'dvc', 'mlcd.modeling') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = run(["python", "-c", code], PROJECT_ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _rewritten(bundle, tmp_path, model_bytes=None, model_hash=None):
    """A copy of the bundle whose manifest lists its (new) model file's sha256: a careless rebuild."""
    from mlcd.files import sha256_file

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    if model_bytes is not None:
        (copy / "model.onnx").write_bytes(model_bytes)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = sha256_file(copy / "model.onnx")
    manifest["model_hash"] = model_hash or manifest["files"]["model.onnx"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_an_unreadable_model_is_refused_with_exit_2(bundle, tmp_path):
    broken = _rewritten(bundle, tmp_path, model_bytes=b"not a model at all")
    with pytest.raises(BundleError, match="is not a model onnxruntime can load"):
        load(ServeSettings(bundle=broken))
    done = run(["mlcd", "serve", "--bundle", str(broken), "--port", "1"], tmp_path, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "rebuild the bundle" in done.stderr


def test_a_model_hash_that_is_not_the_model_files_is_refused(bundle, tmp_path):
    wrong = _rewritten(bundle, tmp_path, model_hash="0" * 64)
    with pytest.raises(BundleError, match=r"model_hash 000000000000\.\.\. is not the sha256"):
        load(ServeSettings(bundle=wrong))
