"""Delayed labels: /feedback joins true labels to logged answers by request id, and the live
performance it publishes equals scikit-learn's metrics on the same answers and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score
from starlette.testclient import TestClient

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.feedback import PREFIX, Label, LivePerformance
from mlcd.serve.rotating_log import LogSettings, closed_files
from mlcd.serve.server import load

TARGET = "diagnosis"


@pytest.fixture(scope="module")
def bundle(built_project: Path) -> Path:
    return built_project / "models" / "bundle"


@pytest.fixture(scope="module")
def held_out(built_project: Path) -> pd.DataFrame:
    return pd.read_parquet(built_project / "data" / "processed" / "test.parquet").head(60)


def _client(bundle: Path, log: Path | None, token: str | None = None) -> TestClient:
    settings = ServeSettings(
        bundle=bundle, log=LogSettings(log, flush_seconds=0.05) if log else None, api_token=token
    )
    return TestClient(create_app(load(settings), settings))


def _gauges(text: str) -> dict[str, float]:
    return {
        sample.labels["metric"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlcd_live_performance"
    }


def test_labels_join_answers_and_live_performance_equals_scikit_learns(bundle, held_out, tmp_path):
    features = held_out.drop(columns=TARGET)
    truth = held_out[TARGET].astype(str).tolist()
    with _client(bundle, tmp_path / "log") as client:
        answers = []
        for start in range(0, 60, 20):  # three requests of 20 records
            batch = features.iloc[start : start + 20].to_dict(orient="records")
            answers.append(client.post("/predict", json=batch).json())
        labels = [
            {"request_id": answer["request_id"], "row": row, "label": truth[20 * index + row]}
            for index, answer in enumerate(answers)
            for row in range(20)
        ]
        # Labels arrive late and in any order, some in batches, one alone.
        reply = client.post("/feedback", json=labels[::-1][:59]).json()
        single = client.post("/feedback", json=labels[0]).json()
        unknown = client.post("/feedback", json={"request_id": "never-answered", "label": truth[0]}).json()
        metrics = client.get("/metrics").text
    assert (reply["received"], reply["matched"], reply["unknown"]) == (59, 59, 0)
    assert (single["matched"], unknown["unknown"]) == (1, 1)
    predicted = [label for answer in answers for label in answer["labels"]]
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted, pos_label="malignant"),
    }
    assert single["live"] == pytest.approx(expected, rel=1e-12)
    assert _gauges(metrics) == pytest.approx(expected, rel=1e-12)
    assert expected["accuracy"] > 0.8  # a real model on real rows
    logged = pd.concat([pq.read_table(f).to_pandas() for f in closed_files(tmp_path / "log", PREFIX)])
    assert len(logged) == 61 and logged["matched"].sum() == 60
    assert set(logged.loc[~logged["matched"], "request_id"]) == {"never-answered"}
    assert (logged.loc[logged["matched"], "predicted_label"].notna()).all()


def test_bad_feedback_is_a_clear_422_and_nothing_is_counted(bundle, tmp_path):
    with _client(bundle, tmp_path / "log") as client:
        answer = client.post("/predict", json=[]).status_code  # no records: a 422 already
        assert answer == 422
        cases = {
            '{"request_id": "x", "label": "neither"}': "label must be one of the model's classes",
            '{"request_id": "x", "label": "benign", "extra": 1}': "unknown field 'extra'",
            '{"request_id": 5, "label": "benign"}': "request_id must be the answer's request id",
            '{"request_id": "x", "row": -1, "label": "benign"}': "row must be a record's place",
            '[{"request_id": "x", "label": "benign"}, 3]': "record 1: send",
            "[]": "send 1 to 1,000 feedback records",
        }
        for body, message in cases.items():
            reply = client.post("/feedback", content=body, headers={"content-type": "application/json"})
            assert reply.status_code == 422 and message in reply.text, (body, reply.text)
        assert (
            client.post("/feedback", content="x", headers={"content-type": "text/plain"}).status_code == 415
        )


def test_feedback_needs_the_log_and_the_token(bundle, tmp_path):
    label = {"request_id": "x", "label": "benign"}
    with _client(bundle, None) as client:
        reply = client.post("/feedback", json=label)
        assert reply.status_code == 409 and "--log-dir" in reply.text
    with _client(bundle, tmp_path / "log", token="s3cret") as client:
        assert client.post("/feedback", json=label).status_code == 401
        allowed = client.post("/feedback", json=label, headers={"authorization": "Bearer s3cret"})
        assert allowed.status_code == 200


def test_live_performance_keeps_the_last_window_and_matches_scikit_learn_for_every_task():
    rng = np.random.default_rng(7)
    classes = ["a", "b", "c"]
    truth = rng.choice(classes, 500).tolist()
    predicted = [t if rng.random() < 0.7 else rng.choice(classes) for t in truth]
    live = LivePerformance(classes, None, window=200)
    labels = [Label("r", i, t, p) for i, (p, t) in enumerate(zip(predicted, truth, strict=True))]
    for start in range(0, 500, 50):  # ten deliveries; the window keeps the last 200 labels
        measured = live.add(labels[start : start + 50])
    assert measured == pytest.approx(
        {
            "accuracy": accuracy_score(truth[-200:], predicted[-200:]),
            "macro_f1": f1_score(truth[-200:], predicted[-200:], average="macro"),
        },
        rel=1e-12,
    )
    values = rng.normal(50, 10, 300)
    estimates = values + rng.normal(0, 3, 300)
    regression = LivePerformance(None, None).measure(list(zip(estimates, values, strict=True)))
    assert regression == pytest.approx(
        {"mae": mean_absolute_error(values, estimates), "r2": r2_score(values, estimates)}, rel=1e-9
    )
    assert "r2" not in LivePerformance(None, None).measure([(1.0, 2.0)])  # R² needs a spread
