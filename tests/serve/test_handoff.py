"""The hand-off of answers off the request path (serve/handoff.py): in order, bounded, counted,
reaching every part of the loop, and never between an answer and the label that follows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from mlcd.serve import handoff
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.feedback import RecentAnswers
from mlcd.serve.handoff import Handoff, Served, served
from mlcd.serve.model import BundleModel
from mlcd.serve.payload import Batch, to_batch
from mlcd.serve.prediction_log import PredictionLog, logged_files
from mlcd.serve.rotating_log import LogSettings
from mlcd.serve.server import load

TARGET = "diagnosis"


def _served(request_id: str, labels: list[str]) -> Served:
    numbers = np.zeros((len(labels), 1), dtype=np.float32)
    return served(request_id, "/predict", Batch(numbers), {"labels": labels}, numbers, when=0.0)


@pytest.fixture(scope="module")
def bundle(built_project: Path) -> Path:
    return built_project / "models" / "bundle"


@pytest.fixture(scope="module")
def features(built_project: Path) -> pd.DataFrame:
    return pd.read_parquet(built_project / "data" / "processed" / "test.parquet").drop(columns=TARGET)


def test_every_taker_gets_every_answer_in_order_and_a_failing_one_stops_none():
    seen: list[str] = []

    def broken(served: list[Served]) -> None:
        raise RuntimeError("a bug in one part of the loop")

    def taker(served: list[Served]) -> None:
        seen.extend(request_id for _, request_id, *_ in served)

    dropped: list[int] = []
    queue = Handoff([broken, taker], max_records=5, dropped=dropped.append, interval_seconds=3600)
    try:
        for index in range(4):
            two = np.zeros((2, 1), np.float32)
            queue.put(f"r{index}", "/predict", Batch(two), {"labels": ["a", "b"]}, two)
        queue.hand_on()
        assert seen == ["r0", "r1"]  # two requests of 2 records fit 5; the next two were dropped, counted
        assert dropped == [2, 2]
        queue.put("r4", "/predict", Batch(one := np.zeros((1, 1), np.float32)), {"labels": ["a"]}, one)
    finally:
        queue.close()  # what is queued is handed on as the server stops
    assert seen == ["r0", "r1", "r4"]


def test_recent_answers_keep_the_newest_records_and_a_reused_id_gives_its_newest_answer():
    recent = RecentAnswers(capacity=4)
    recent.take([_served("a", ["x", "y"]), _served("b", ["z"])])
    recent.take([_served("a", ["new"])])  # a client that reuses an id
    assert (recent.get("a", 0), recent.get("a", 1), recent.get("b", 0)) == ("new", None, "z")
    recent.take([_served("c", ["p", "q"])])
    assert recent.get("b", 0) == "z"  # 6 records: without the oldest part (3), 3 would be kept
    recent.take([_served("d", ["r", "s"])])  # 8: the two oldest parts go, the newest 4 stay
    assert (recent.get("a", 0), recent.get("b", 0)) == (None, None)
    assert (recent.get("c", 1), recent.get("d", 0)) == ("q", "r")
    assert recent.get("never", 0) is None


def test_a_label_sent_right_after_its_answer_matches(bundle, features, tmp_path, monkeypatch):
    """The hand-off's thread waits an hour here: /feedback hands the queue on itself."""
    monkeypatch.setattr(handoff, "INTERVAL_SECONDS", 3600.0)
    settings = ServeSettings(bundle=bundle, log=LogSettings(tmp_path / "log", flush_seconds=0.05))
    with TestClient(create_app(load(settings), settings)) as client:
        answer = client.post("/predict", json=features.iloc[0].to_dict()).json()
        reply = client.post("/feedback", json={"request_id": answer["request_id"], "label": "benign"}).json()
    assert (reply["matched"], reply["unknown"]) == (1, 0)


def test_the_log_holds_single_records_and_batches_as_answered(bundle, features, tmp_path):
    """Requests of one record (the log's shortcut) and of several, mixed in one hand-off."""
    settings = ServeSettings(bundle=bundle, log=LogSettings(tmp_path / "log", flush_seconds=0.05))
    sent = features.head(7).copy()
    rows = sent.to_dict(orient="records")
    with TestClient(create_app(load(settings), settings)) as client:
        answers = [
            client.post("/predict", json=rows[0], headers={"x-request-id": "one"}).json(),
            client.post("/predict", json=rows[1:4], headers={"x-request-id": "three"}).json(),
            client.post("/predict", json=rows[4], headers={"x-request-id": "another"}).json(),
            client.post("/predict", json=rows[5:7], headers={"x-request-id": "two"}).json(),
        ]
    logged = pd.concat([pq.read_table(f).to_pandas() for f in logged_files(tmp_path / "log")])
    logged = logged.sort_values(["time", "row"], kind="stable").reset_index(drop=True)
    assert list(logged["request_id"]) == ["one", "three", "three", "three", "another", "two", "two"]
    assert list(logged["row"]) == [0, 0, 1, 2, 0, 0, 1]
    assert list(logged["output.label"]) == [label for answer in answers for label in answer["labels"]]
    for name in answers[0]["probabilities"][0]:  # the logged probabilities are exactly those answered
        given = [row[name] for answer in answers for row in answer["probabilities"]]
        assert list(logged[f"output.probability.{name}"]) == given, name
    for name in sent.columns:
        expected = sent[name].to_numpy(np.float32).astype(np.float64)
        np.testing.assert_array_equal(logged[f"input.{name}"].to_numpy(), expected, err_msg=name)


def test_a_gap_is_logged_as_null(bundle, features, tmp_path):
    """A gap reaches the model as NaN (where the schema lets a feature be missing); the log says null."""
    model = load(ServeSettings(bundle=bundle))
    log = PredictionLog(LogSettings(tmp_path), model.layout, model.model_hash, None, model.classes)
    numbers = features.head(2)[list(model.layout.names)].to_numpy(np.float32).copy()
    numbers[1, 0] = np.nan
    even = np.full((2, len(model.classes)), 0.5, dtype=np.float32)
    result = {"labels": model.classes[:1] * 2, "probabilities": []}
    log.take([served("gap", "/predict", Batch(numbers), result, even, when=0.0)])
    log.close()
    logged = pq.read_table(logged_files(tmp_path)[0]).to_pandas()
    assert logged[f"input.{model.layout.names[0]}"].isna().tolist() == [False, True]
    assert logged["git_commit"].isna().all() and list(logged["row"]) == [0, 1]


def test_what_is_kept_past_a_request_holds_no_string_or_dict_made_for_it(bundle, features):
    """The labels kept are the model's one string per class, and a model without text features
    keeps one shared empty dict: objects made per request and kept past it slowed the request
    path (handoff's docstring)."""
    model = BundleModel(bundle)
    rows = features.head(40).to_dict(orient="records")
    kept = []
    for start in (0, 20):
        batch = to_batch(rows[start : start + 20], model.layout, max_batch=20)
        result, values = model.answer(batch.numbers, batch.texts)
        kept.append(served("r", "/predict", batch, result, values, when=0.0))
    labels = [label for answer in kept for label in answer[6]]
    assert len(set(labels)) == 2  # both classes answered
    assert len({id(label) for label in labels}) == 2  # one object per class, across requests
    assert kept[0][5] is kept[1][5] == {}


@pytest.mark.parametrize("kind", [np.float32, np.float64])
def test_the_model_outputs_come_back_exactly_as_float64_whatever_their_type(kind):
    """Kept in the model's own type (a cast on the request path cost time), widened per hand-off."""
    rng = np.random.default_rng(3)
    outputs = [rng.random((rows, 3)).astype(kind) for rows in (1, 4, 2)]
    answers = [
        served(
            f"r{i}", "/predict", Batch(np.zeros((len(o), 1), np.float32)), {"labels": ["a"] * len(o)}, o, 0.0
        )
        for i, o in enumerate(outputs)
    ]
    joined = handoff.values(answers, 3)
    assert joined.dtype == np.float64
    np.testing.assert_array_equal(joined, np.vstack(outputs).astype(np.float64))
    np.testing.assert_array_equal(handoff.values(answers[:1], 3), outputs[0].astype(np.float64))
