"""Model checks: every estimator trains, scores sensibly, and exports to ONNX with parity."""

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from mlcd.errors import ParityError
from mlcd.files import read_json, sha256_file
from mlcd.modeling.model_io import load_model

from ..helpers import run_pipeline_in_process

REGRESSION = {
    "data": {"source": "sklearn:diabetes", "schema": "data/schemas/diabetes.yaml"},
    "train": {"task": "regression", "estimator": "ridge"},
}


@pytest.mark.parametrize(
    ("overrides", "floor"),
    [
        pytest.param(
            {"train": {"estimator": "logistic_regression", "cv_folds": 3}},
            {"roc_auc": 0.98, "accuracy": 0.94},
            id="logistic",
        ),
        pytest.param(
            {"train": {"estimator": "random_forest", "random_forest": {"n_estimators": 50}}},
            {"roc_auc": 0.97},
            marks=pytest.mark.slow,
            id="forest",
        ),
        pytest.param(
            {"train": {"estimator": "hist_gradient_boosting"}},
            {"roc_auc": 0.97},
            marks=pytest.mark.slow,
            id="boosting",
        ),
        pytest.param(
            {
                "train": {
                    "estimator": "logistic_regression",
                    "logistic_regression": {"penalty": "l1", "C": 0.5, "max_iter": 5000},
                }
            },
            {"roc_auc": 0.97},
            marks=pytest.mark.slow,  # saga: seconds
            id="logistic-l1",
        ),
        pytest.param(REGRESSION, {"r2": 0.35}, id="ridge"),
        # The labels are text ("malignant"): XGBoost itself takes 0..n-1 only.
        pytest.param({"train": {"estimator": "xgboost"}}, {"roc_auc": 0.97}, id="xgboost"),
        pytest.param(
            {
                **REGRESSION,
                "train": {
                    "task": "regression",
                    "estimator": "xgboost",
                    "xgboost": {"max_depth": 2, "learning_rate": 0.05},
                },
            },
            {"r2": 0.25},
            id="xgboost-regression",
        ),
    ],
)
def test_estimator_trains_scores_and_exports(project, overrides, floor):
    paths, manifest = run_pipeline_in_process(project, overrides)
    metrics = read_json(paths.metrics)
    for name, lowest in floor.items():
        assert metrics[name] >= lowest, metrics
    assert manifest.parity is not None and manifest.parity.label_mismatches == 0
    assert manifest.parity.max_abs_diff <= manifest.parity.tolerance
    for name, digest in manifest.files.items():
        assert sha256_file(paths.bundle / name) == digest
    assert manifest.model_hash == manifest.files["model.onnx"]
    assert manifest.data.sha256 == sha256_file(paths.raw_data)
    assert manifest.metrics == metrics


def test_bundle_examples_are_what_the_onnx_model_answers(project):
    paths, _ = run_pipeline_in_process(project, {})
    examples = read_json(paths.bundle / "examples.json")
    schema = read_json(paths.bundle / "schema.json")
    session = ort.InferenceSession(str(paths.bundle / "model.onnx"))
    names = [f["name"] for f in schema["features"]]
    assert schema["onnx_input"] == "matrix"  # all-numeric data: one [n, k] float input
    feeds = {"features": np.array([[r[n] for n in names] for r in examples["records"]], dtype=np.float32)}
    labels, proba = session.run(None, feeds)
    assert labels.tolist() == examples["labels"]
    np.testing.assert_allclose(proba, examples["probabilities"], rtol=0, atol=1e-7)
    # What the bundle keeps comes from the training split alone, never the test split.
    train_labels = pd.read_parquet(paths.train_data)["diagnosis"]
    shares = train_labels.value_counts(normalize=True).round(6).to_dict()
    assert schema["class_balance"] == shares != read_json(paths.data_profile)["class_balance"]
    assert schema["positive_class"] == "malignant"


def test_cross_validation_scores_are_recorded(project):
    paths, _ = run_pipeline_in_process(project, {"train": {"cv_folds": 4}})
    cv = read_json(paths.train_metrics)["cv"]
    assert cv["folds"] == 4
    assert 0.9 < cv["roc_auc"]["mean"] <= 1.0
    # Four folds of one model differ a little, never a lot (a NaN fails both).
    assert 0 < cv["accuracy"]["std"] < 0.05


def test_parity_failure_writes_no_bundle(project):
    with pytest.raises(ParityError, match="the bundle was not written"):
        run_pipeline_in_process(project, {"package": {"parity_tolerance": 1e-12}})
    assert not (project / "models" / "bundle").exists()
    assert [p.name for p in (project / "models").iterdir()] == ["model.skops"]


def test_predictions_do_not_depend_on_row_order(project):
    paths, _ = run_pipeline_in_process(project, {})
    model = load_model(paths.model)
    test = pd.read_parquet(paths.test_data).drop(columns="diagnosis")
    shuffled = test.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(model.predict_proba(shuffled), model.predict_proba(test.loc[shuffled.index]))


def test_larger_tumours_look_more_malignant(project):
    paths, _ = run_pipeline_in_process(project, {})
    model = load_model(paths.model)
    record = pd.read_parquet(paths.test_data).drop(columns="diagnosis").median().to_frame().T
    bigger = record.copy()
    for column in ("worst_radius", "worst_area", "worst_concave_points"):
        bigger[column] *= 1.5
    malignant = list(model.classes_).index("malignant")
    assert model.predict_proba(bigger)[0, malignant] > model.predict_proba(record)[0, malignant]


def test_onnx_bytes_do_not_depend_on_opset_import_order():
    import onnx

    from mlcd.modeling.package import canonical_onnx

    def model(order):
        graph = onnx.helper.make_graph([], "mlcd", [], [])
        return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in order])

    one = canonical_onnx(model([("ai.onnx.ml", 1), ("", 11)]))
    other = canonical_onnx(model([("", 11), ("ai.onnx.ml", 1)]))
    assert one == other
    assert [o.domain for o in onnx.load_from_string(one).opset_import] == ["", "ai.onnx.ml"]


def test_text_features_keep_one_onnx_input_per_feature(project):
    """With a categorical column the export uses per-feature inputs, and still matches scikit-learn."""
    from mlcd.data.schema import infer_schema, schema_to_yaml
    from mlcd.data.sources import breast_cancer_frame

    frame = breast_cancer_frame()
    frame["clinic"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    frame.to_csv(project / "data" / "external" / "mixed.csv", index=False)
    schema = infer_schema(frame, "diagnosis")
    (project / "data" / "schemas" / "mixed.yaml").write_text(schema_to_yaml(schema))
    paths, manifest = run_pipeline_in_process(
        project, {"data": {"source": "data/external/mixed.csv", "schema": "data/schemas/mixed.yaml"}}
    )
    bundle_schema = json.loads((paths.bundle / "schema.json").read_text())
    assert bundle_schema["onnx_input"] == "columns"
    assert manifest.parity is not None and manifest.parity.label_mismatches == 0
    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import to_batch

    model = BundleModel(paths.bundle)
    examples = json.loads((paths.bundle / "examples.json").read_text())
    assert all(r["clinic"] in {"north", "south"} for r in examples["records"])
    batch = to_batch(examples["records"], model.layout, len(examples["records"]))
    answers = model.predict(batch.numbers, batch.texts)
    assert answers["labels"] == examples["labels"]
    np.testing.assert_allclose(
        [[p["benign"], p["malignant"]] for p in answers["probabilities"]],
        examples["probabilities"],
        atol=1e-6,
    )
