"""A bundle made from data that is not ours: scikit-learn's wine table as a team would bring it.

Three text classes listed in the schema in an order that is not the model's, column
names with slashes, spaces, parentheses and a leading digit, a numeric and a text
feature with gaps. The pipeline runs in process (no dvc) and the API answers over
FastAPI's test client, the same parsing and model as `mlcd serve`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from starlette.testclient import TestClient

from mlcd.cluster import SCHEDULER_ENV
from mlcd.config import FLOAT32_MAX
from mlcd.errors import BundleError, ModelError
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.server import load

from ..helpers import copy_params_and_data, rewritten_bundle, run_pipeline_in_process

CULTIVARS = {0: "barolo", 1: "grignolino", 2: "barbera"}
SLASHED = "od280/od315_of_diluted_wines"
HUE = "1st hue (visual)"
REGION = "vineyard region"
GAPPY = "alcohol"  # numeric, with gaps
TARGET = "cultivar"
JSON = "application/json"


def wine_frame() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"hue": HUE, "target": TARGET})
    frame[TARGET] = frame[TARGET].map(CULTIVARS)
    rows = np.arange(len(frame))
    frame[REGION] = np.where(rows % 3 == 0, "north", np.where(rows % 3 == 1, "south", None))
    frame.loc[rows % 7 == 0, GAPPY] = np.nan
    return frame


@pytest.fixture(scope="module")
def wine_project(tmp_path_factory) -> tuple[Path, dict]:
    from mlcd.data.schema import infer_schema, schema_to_yaml

    project = copy_params_and_data(tmp_path_factory.mktemp("wine"))
    frame = wine_frame()
    frame.to_csv(project / "data" / "external" / "wine.csv", index=False)
    schema = infer_schema(frame, TARGET)
    body = yaml.safe_load(schema_to_yaml(schema))
    body["target"]["classes"] = ["grignolino", "barolo", "barbera"]  # not the model's sorted order
    (project / "data" / "schemas" / "wine.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    _, manifest = run_pipeline_in_process(
        project,
        {
            "data": {"source": "data/external/wine.csv", "schema": "data/schemas/wine.yaml"},
            "train": {"cv_folds": 0},
        },
    )
    return project, manifest


@pytest.fixture(scope="module")
def bundle(wine_project) -> Path:
    return wine_project[0] / "models" / "bundle"


@pytest.fixture(scope="module")
def client(bundle):
    settings = ServeSettings(bundle=bundle)
    with TestClient(create_app(load(settings), settings)) as client:
        yield client


@pytest.fixture(scope="module")
def held_out_frame(wine_project) -> pd.DataFrame:
    return pd.read_parquet(wine_project[0] / "data" / "processed" / "test.parquet")


def as_sent(frame: pd.DataFrame) -> list[dict]:
    """Test rows as a client sends them: gaps as JSON null."""
    from mlcd.data.split import MISSING_CATEGORY

    records = frame.drop(columns=TARGET).to_dict(orient="records")
    return [
        {
            k: None if (v == MISSING_CATEGORY or (isinstance(v, float) and math.isnan(v))) else v
            for k, v in r.items()
        }
        for r in records
    ]


def predict(client, body) -> dict:
    response = client.post("/predict", content=json.dumps(body), headers={"content-type": JSON})
    assert response.status_code == 200, response.text
    return response.json()


def sklearn_model(project: Path):
    from mlcd.modeling.model_io import load_model

    return load_model(project / "models" / "model.skops")


def test_every_label_is_the_name_of_its_largest_probability(wine_project, bundle, client, held_out_frame):
    schema = json.loads((bundle / "schema.json").read_text())
    assert schema["target"]["classes"] == ["grignolino", "barolo", "barbera"]
    assert schema["classes"] == ["barbera", "barolo", "grignolino"]  # the model's column order
    answer = predict(client, as_sent(held_out_frame))
    for label, probabilities in zip(answer["labels"], answer["probabilities"], strict=True):
        assert label == max(probabilities, key=probabilities.get)
    model = sklearn_model(wine_project[0])
    features = held_out_frame.drop(columns=TARGET).astype(
        {n: "float32" for n in held_out_frame if n not in (REGION, TARGET)}
    )
    assert answer["labels"] == [str(v) for v in model.predict(features)]
    expected = model.predict_proba(features)
    got = [[row[str(c)] for c in model.classes_] for row in answer["probabilities"]]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_null_omitted_and_nan_are_one_missing_value_imputed_as_in_training(
    wine_project, client, held_out_frame
):
    from mlcd.data.split import MISSING_CATEGORY

    record = as_sent(held_out_frame)[0]
    record[GAPPY], record[REGION] = None, None
    omitted = {k: v for k, v in record.items() if k not in (GAPPY, REGION)}
    with_nan = json.dumps(record).replace("null", "NaN")
    answers = [
        predict(client, record),
        predict(client, omitted),
        client.post("/predict", content=with_nan, headers={"content-type": JSON}).json(),
    ]
    assert answers[0]["probabilities"] == answers[1]["probabilities"] == answers[2]["probabilities"]
    model = sklearn_model(wine_project[0])
    row = pd.DataFrame([{**record, GAPPY: np.nan, REGION: MISSING_CATEGORY}])[model.feature_names_in_]
    row = row.astype({n: "float32" for n in row if n != REGION})
    expected = dict(zip(map(str, model.classes_), model.predict_proba(row)[0], strict=True))
    for name, probability in answers[0]["probabilities"][0].items():
        assert probability == pytest.approx(expected[name], abs=1e-5)


def test_a_feature_that_may_not_be_missing_answers_422_naming_it(client, held_out_frame):
    record = as_sent(held_out_frame)[0]
    for body, message in (
        ({**record, SLASHED: None}, "may not be null"),
        ({k: v for k, v in record.items() if k != SLASHED}, "field required"),
    ):
        response = client.post(
            "/predict", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["body", SLASHED] and message in problem["msg"]


def test_examples_are_strict_json_with_null_for_gaps(bundle):
    def no_constants(token: str) -> None:
        raise AssertionError(f"examples.json holds the non-JSON token {token}")

    examples = json.loads((bundle / "examples.json").read_text(), parse_constant=no_constants)
    values = [record.get(name) for record in examples["records"] for name in (GAPPY, REGION)]
    assert None in values


def test_schema_json_names_inputs_and_every_training_category(bundle, wine_project):
    schema = json.loads((bundle / "schema.json").read_text())
    features = {f["name"]: f for f in schema["features"]}
    assert {SLASHED, HUE, REGION} <= set(features)
    assert features[SLASHED]["onnx_name"] == "od280_od315_of_diluted_wines"
    assert features[HUE]["onnx_name"].isidentifier()
    assert features[REGION]["categories"] == ["north", "south"]
    assert features[GAPPY]["nullable"] and features[REGION]["nullable"]


def test_openapi_describes_the_record_the_api_takes(client):
    document = client.get("/openapi.json").json()
    body = document["paths"]["/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["oneOf"][0] == {
        "$ref": "#/components/schemas/Record"
    }
    record = document["components"]["schemas"]["Record"]
    number = {"type": "number", "minimum": 0.0, "maximum": FLOAT32_MAX}  # float32's range where no bound
    assert record["properties"][GAPPY] == {"anyOf": [number, {"type": "null"}]}
    assert record["properties"][REGION]["anyOf"][1] == {"type": "null"}
    assert SLASHED in record["required"] and GAPPY not in record["required"]
    assert record["additionalProperties"] is False


def _with_swapped_classes(bundle: Path, target: Path) -> Path:
    def swap(files):
        files["schema.json"]["classes"].reverse()

    return rewritten_bundle(bundle, target, swap)


def test_class_names_that_do_not_fit_the_model_refuse_to_serve_and_to_package(bundle, tmp_path):
    from mlcd.modeling.package import refuse_unservable

    swapped = _with_swapped_classes(bundle, tmp_path / "bundle")
    with pytest.raises(BundleError, match="not their most probable one"):
        load(ServeSettings(bundle=swapped))
    with pytest.raises(ModelError, match="the bundle would not serve, so it was not written"):
        refuse_unservable(swapped)


def test_unseen_categories_are_counted_per_feature_and_gaps_are_not(client, held_out_frame):
    from prometheus_client import REGISTRY

    def unseen() -> float:
        return REGISTRY.get_sample_value("mlcd_unseen_categories_total", {"feature": REGION}) or 0.0

    record = as_sent(held_out_frame)[0]
    before = unseen()
    predict(client, [{**record, REGION: "east"}, {**record, REGION: "west"}, {**record, REGION: "north"}])
    assert unseen() == before + 2
    predict(client, {**record, REGION: None})
    assert unseen() == before + 2
    exposed = client.get("/metrics").text
    assert f'mlcd_unseen_categories_total{{feature="{REGION}"}}' in exposed


def test_mlflow_and_v2_bodies_with_gaps_and_text_equal_predict(client, held_out_frame):
    """Gaps as MLflow's serializer writes them (NaN, None) and as v2 BYTES; text features as strings."""
    from mlflow.models import convert_input_example_to_serving_input

    sent = as_sent(held_out_frame)
    expected = predict(client, sent)
    frame = pd.DataFrame(sent)
    body = convert_input_example_to_serving_input(frame)
    assert "NaN" in body or "null" in body
    answer = client.post("/invocations", content=body, headers={"content-type": JSON})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected["labels"]
    assert answer.json()["probabilities"] == expected["probabilities"]
    inputs = [
        {
            "name": name,
            "shape": [len(frame)],
            "datatype": "BYTES" if name == REGION else "FP64",
            "data": [
                None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in frame[name]
            ],
        }
        for name in frame.columns
    ]
    infer = client.post("/v2/models/model/infer", json={"inputs": inputs})
    assert infer.status_code == 200, infer.text
    outputs = {o["name"]: o for o in infer.json()["outputs"]}
    assert outputs["label"]["data"] == expected["labels"]


def test_the_mlflow_signature_follows_the_schema_with_text_and_gaps(bundle, held_out_frame):
    """The signature `mlcd mlflow log` gives the model: a text feature with gaps is an optional string,
    a numeric one with gaps an optional double, the rest required doubles; named as clients send them."""
    from mlflow.models.utils import _enforce_schema

    from mlcd.tracking.mlflow_bridge import _signature

    inputs = _signature(bundle).inputs
    specs = {spec.name: spec for spec in inputs.inputs}
    assert list(specs) == [c for c in held_out_frame.columns if c != TARGET]
    assert (specs[REGION].type.name, specs[REGION].required) == ("string", False)
    assert (specs[GAPPY].type.name, specs[GAPPY].required) == ("double", False)
    assert all(s.type.name == "double" and s.required for n, s in specs.items() if n not in (REGION, GAPPY))
    # MLflow's own input check accepts the test rows as a client sends them (gaps as missing values).
    enforced = _enforce_schema(pd.DataFrame(as_sent(held_out_frame)), inputs)
    assert len(enforced) == len(held_out_frame)


@pytest.mark.parametrize("scheduler", ["", pytest.param("local:1", marks=pytest.mark.slow)])
def test_batch_scoring_answers_gaps_and_unseen_categories_as_predict(
    bundle, client, held_out_frame, tmp_path, monkeypatch, scheduler
):
    """`mlcd predict` on the team's own kind of file: a CSV with empty cells and a region never seen,
    scored here and on a one-worker LocalCluster (MLCD_DASK_SCHEDULER=local:1)."""
    from mlcd.serve.batch import predict_table
    from mlcd.serve.scoring import LABEL_COLUMN, PROBABILITY_PREFIX

    records = as_sent(held_out_frame)
    records[0][REGION] = "atlantis"  # unseen in training
    records[1][GAPPY] = None
    records[2][REGION] = None
    source = tmp_path / "to-score.csv"
    pd.DataFrame(records).to_csv(source, index=False)  # gaps become empty cells
    monkeypatch.setenv(SCHEDULER_ENV, scheduler)
    predict_table(source, tmp_path / "scores.parquet", bundle, batch_rows=5)
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    answer = predict(client, records)
    assert list(scored[LABEL_COLUMN]) == answer["labels"]
    for name in CULTIVARS.values():
        expected = [row[name] for row in answer["probabilities"]]
        assert scored[f"{PROBABILITY_PREFIX}{name}"].tolist() == pytest.approx(expected, abs=1e-6)


def test_the_prediction_log_keeps_text_gaps_and_every_class_as_answered(bundle, held_out_frame, tmp_path):
    import pyarrow.parquet as pq

    from mlcd.serve.prediction_log import logged_files
    from mlcd.serve.rotating_log import LogSettings

    sent = as_sent(held_out_frame)
    settings = ServeSettings(bundle=bundle, log=LogSettings(tmp_path, flush_seconds=0.05))
    with TestClient(create_app(load(settings), settings)) as client:
        answers = [predict(client, sent[:3]), predict(client, sent[3]), predict(client, sent[4:])]
    logged = pd.concat([pq.read_table(f).to_pandas() for f in logged_files(tmp_path)], ignore_index=True)
    logged = logged.sort_values(["time", "row"], kind="stable").reset_index(drop=True)
    assert list(logged["row"]) == [0, 1, 2, 0, *range(len(sent) - 4)]
    gaps = [record[GAPPY] is None for record in sent]
    assert list(logged[f"input.{GAPPY}"].isna()) == gaps and any(gaps)
    regions = logged[f"input.{REGION}"]
    for record, logged_region in zip(sent, regions, strict=True):  # text as the model received it
        assert logged_region == record[REGION] or (record[REGION] is None and logged_region)
    labels = [label for answer in answers for label in answer["labels"]]
    assert list(logged["output.label"]) == labels
    for name in CULTIVARS.values():  # float32 probabilities, exactly as the JSON carried them
        answered = [p[name] for answer in answers for p in answer["probabilities"]]
        assert list(logged[f"output.probability.{name}"]) == answered


def test_a_regression_log_keeps_each_predicted_value(bundle, tmp_path):
    import pyarrow.parquet as pq

    from mlcd.serve.handoff import served
    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import Batch
    from mlcd.serve.prediction_log import PredictionLog, logged_files
    from mlcd.serve.rotating_log import LogSettings

    layout = BundleModel(bundle).layout
    numbers = np.arange(2 * layout.width, dtype=np.float32).reshape(2, layout.width)
    numbers[1, 0] = np.nan
    batch = Batch(numbers, {REGION: ["north", "south"]})
    values = np.array([[1.5], [-2.25]], dtype=np.float32)
    log = PredictionLog(LogSettings(tmp_path, flush_seconds=0.05), layout, "h", None, classes=None)
    log.take([served("r1", "/predict", batch, {"predictions": [1.5, -2.25]}, values, 1.0)])
    log.close()
    logged = pd.concat([pq.read_table(f).to_pandas() for f in logged_files(tmp_path)], ignore_index=True)
    assert list(logged["output.value"]) == [1.5, -2.25] and list(logged["request_id"]) == ["r1", "r1"]
    assert list(logged[f"input.{REGION}"]) == ["north", "south"] and list(logged["row"]) == [0, 1]
    first = logged.filter(like="input.").drop(columns=f"input.{REGION}").to_numpy(np.float64)
    np.testing.assert_array_equal(first, numbers.astype(np.float64))
