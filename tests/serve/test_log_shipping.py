"""--log-remote: closed log files reach S3 (moto's server on loopback) byte for byte, CI-side
readers take the s3:// location, and a store that is down changes nothing a client sees: the
files wait, counted, and go up at the next start."""

from __future__ import annotations

from pathlib import Path

import boto3
import pandas as pd
import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from mlcd.errors import ServeError
from mlcd.http_client import free_port
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.rotating_log import LogSettings, closed_files, log_settings
from mlcd.serve.server import load

from ..helpers import run

TARGET = "diagnosis"
BUCKET = "mlcd-logs"
REMOTE = f"s3://{BUCKET}/prod/api"


@pytest.fixture
def s3(s3_endpoint: str) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return s3_endpoint


def _serve_and_label(bundle: Path, log: Path, rows: pd.DataFrame) -> None:
    """Three requests of 20 records and their labels, then a graceful stop."""
    settings = ServeSettings(bundle=bundle, log=LogSettings(log, flush_seconds=0.05, remote=REMOTE))
    with TestClient(create_app(load(settings), settings)) as client:
        features, truth = rows.drop(columns=TARGET), rows[TARGET].astype(str).tolist()
        for start in range(0, 60, 20):
            answer = client.post("/predict", json=features.iloc[start : start + 20].to_dict(orient="records"))
            assert answer.status_code == 200
            labels = [
                {"request_id": answer.json()["request_id"], "row": row, "label": truth[start + row]}
                for row in range(20)
            ]
            assert client.post("/feedback", json=labels).status_code == 200


def _shipped(outcome: str) -> float:
    """Prediction-log files shipped (or failed) in this process so far: read after a server stopped,
    since a log ships at its start and its close."""
    found = REGISTRY.get_sample_value(
        "mlcd_log_files_shipped_total", {"log": "predictions", "outcome": outcome}
    )
    return found or 0.0


def _objects() -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_closed_files_reach_s3_and_the_report_reads_them_there(s3, built_project, tmp_path):
    bundle = built_project / "models" / "bundle"
    rows = pd.read_parquet(built_project / "data" / "processed" / "test.parquet").head(60)
    log = tmp_path / "log"
    _serve_and_label(bundle, log, rows)
    local = {f"prod/api/{p.name}": p.read_bytes() for p in sorted(log.glob("*.parquet"))}
    assert {key.split("/")[-1].split("-")[0] for key in local} == {"predictions", "feedback"}
    assert _objects() == local  # every closed file, byte for byte
    env = {"AWS_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    done = run(
        [
            "mlcd",
            "monitor",
            "report",
            "--log-dir",
            REMOTE,
            "--out",
            str(tmp_path / "report"),
            "--bundle",
            str(bundle),
        ],
        built_project,
        env={**env, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert "reported 60 records" in done.stderr
    assert "60 labelled records." in (tmp_path / "report" / "monitor.md").read_text()


def test_a_store_that_is_down_changes_no_answer_and_the_files_go_up_at_the_next_start(
    s3, built_project, tmp_path, monkeypatch
):
    bundle = built_project / "models" / "bundle"
    rows = pd.read_parquet(built_project / "data" / "processed" / "test.parquet").head(60)
    log = tmp_path / "log"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    shipped, failed = _shipped("shipped"), _shipped("failed")
    _serve_and_label(bundle, log, rows)
    waiting = closed_files(log, "predictions-") + closed_files(log, "feedback-")
    assert len(waiting) == 2 and not list(log.glob(".*.shipped"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3)  # the store is back; the next server ships them
    assert _objects() == {}
    assert _shipped("failed") > failed and _shipped("shipped") == shipped
    _serve_and_label(bundle, log, rows)
    assert {key.split("/")[-1] for key in _objects()} == {p.name for p in log.glob("*.parquet")}
    assert len(_objects()) == 4 and _shipped("shipped") == shipped + 2  # the waiting file and the new one


def test_log_remote_needs_a_log_dir_and_an_s3_location(tmp_path):
    with pytest.raises(ServeError, match="give --log-dir too"):
        log_settings(None, 1.0, REMOTE)
    with pytest.raises(ServeError, match="s3://bucket/prefix"):
        log_settings(tmp_path, 1.0, "gs://elsewhere")
