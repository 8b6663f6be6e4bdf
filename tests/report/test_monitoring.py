"""`mlcd monitor report`: over what a real server logged, the report's drift scores are the server's
own gauges' scores for the same records, its live performance is scikit-learn's on the labelled
rows, and each drifted feature gets a figure; bad logs and times are one error line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score
from starlette.testclient import TestClient

from mlcd.bundle import PREDICTION
from mlcd.errors import MonitorError
from mlcd.report.monitoring import SUMMARY_FILE, monitor_report, parse_since
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.prediction_log import logged_files
from mlcd.serve.rotating_log import LogSettings
from mlcd.serve.server import load

from ..helpers import run

TARGET = "diagnosis"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bundle(built_project: Path) -> Path:
    return built_project / "models" / "bundle"


@pytest.fixture(scope="module")
def served(built_project: Path, bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """600 training rows with mean_radius 30 % larger, served and logged; labels for 300 of them.
    Returns the log directory, the server's own drift scores and the labelled answers."""
    log = tmp_path_factory.mktemp("served") / "log"
    train = pd.read_parquet(built_project / "data" / "processed" / "train.parquet")
    rows = train.iloc[np.random.default_rng(5).integers(0, len(train), 600)]
    features = rows.drop(columns=TARGET).copy()
    features["mean_radius"] *= 1.3
    settings = ServeSettings(bundle=bundle, log=LogSettings(log, flush_seconds=0.05))
    api = create_app(load(settings), settings)
    with TestClient(api) as client:
        answers = [
            client.post("/predict", json=features.iloc[start : start + 100].to_dict(orient="records")).json()
            for start in range(0, 600, 100)
        ]
        truth = rows[TARGET].astype(str).tolist()
        labels = [
            {"request_id": answer["request_id"], "row": row, "label": truth[100 * index + row]}
            for index, answer in enumerate(answers[:3])
            for row in range(100)
        ]
        assert client.post("/feedback", json=labels).json()["matched"] == 300
        assert api.drift_publisher is not None and api.drift is not None
        found = api.drift_publisher.publish()
        estimated = api.drift.estimated()
    predicted = [label for answer in answers[:3] for label in answer["labels"]]
    return log, (found, estimated), (truth[:300], predicted)


def test_the_report_scores_what_the_server_scored_and_draws_each_drifted_feature(bundle, served, tmp_path):
    log, (found, estimated), (truth, predicted) = served
    out = tmp_path / "report"
    made = monitor_report(bundle, log, out)
    assert made.rows == 600
    assert made.scores == found  # one owner: the same statistics over the same records
    assert set(estimated) == {"accuracy", "f1"}
    assert made.estimated == pytest.approx(estimated, rel=1e-12)  # and the same estimate
    assert "mean_radius" in made.drifted and found["mean_radius"][2]
    assert made.performance == pytest.approx(
        {
            "accuracy": accuracy_score(truth, predicted),
            "f1": f1_score(truth, predicted, pos_label="malignant"),
        },
        rel=1e-12,
    )
    summary = (out / SUMMARY_FILE).read_text()
    assert "| mean_radius | ks |" in summary and "300 labelled records." in summary
    assert "### Estimated performance, before labels" in summary
    assert f"| accuracy | {estimated['accuracy']:.4f} |" in summary
    drawn = {figure.name for figure in made.figures}
    assert "drift-mean_radius.png" in drawn and len(drawn) == len(made.drifted)
    assert all((out / name).read_bytes().startswith(PNG) and f"]({name})" in summary for name in drawn)
    assert PREDICTION in found


def test_the_cli_reports_and_names_what_to_fix(built_project, served, tmp_path):
    log, _, _ = served
    done = run(
        ["mlcd", "monitor", "report", "--log-dir", str(log), "--out", str(tmp_path / "r")], built_project
    )
    assert "reported 600 records" in done.stderr and "drifted: mean_radius" in done.stderr
    later = run(
        ["mlcd", "monitor", "report", "--log-dir", str(log), "--since", "2999-01-01"],
        built_project,
        check=False,
    )
    assert (
        later.returncode == 2
        and "holds no answers of model" in later.stderr
        and "since 2999-01-01" in later.stderr
    )
    bad_time = run(
        ["mlcd", "monitor", "report", "--log-dir", str(log), "--since", "yesterday"],
        built_project,
        check=False,
    )
    assert bad_time.returncode == 2 and "an age such as 24h" in bad_time.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run(["mlcd", "monitor", "report", "--log-dir", str(empty)], built_project, check=False)
    assert nothing.returncode == 2 and "holds no closed prediction log" in nothing.stderr
    assert not (built_project / "monitor-report").exists()  # nothing written on an error


def test_a_damaged_log_file_is_named_and_nothing_is_written(bundle, served, tmp_path):
    log, _, _ = served
    copy = tmp_path / "log"
    copy.mkdir()
    for path in logged_files(log):
        (copy / path.name).write_bytes(path.read_bytes())
    damaged = logged_files(copy)[0]
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with pytest.raises(MonitorError, match=f"{damaged.name} is not a readable prediction log"):
        monitor_report(bundle, copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_since_takes_an_age_or_a_time():
    now = pd.Timestamp("2026-12-04T10:00:00Z").to_pydatetime()
    assert parse_since("90m", now) == pd.Timestamp("2026-12-04T08:30:00Z")
    assert parse_since("2026-12-01T08:00", now) == pd.Timestamp("2026-12-01T08:00:00Z")
    assert parse_since("2026-12-01T08:00+01:00", now) == pd.Timestamp("2026-12-01T07:00:00Z")
    assert json.dumps(str(parse_since("2d", now))) == '"2026-12-02 10:00:00+00:00"'
