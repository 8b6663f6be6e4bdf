"""Request ids and the prediction log: every answer names its request, and what was answered is in
Parquet files that survive a kill -9, a full queue and a full disk, with the API answering throughout."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mlcd.errors import ServeError
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.prediction_log import logged_files
from mlcd.serve.rotating_log import CLOSED_SUFFIX, OPEN_SUFFIX, LogSettings, check_directory
from mlcd.serve.server import load

from ..helpers import run
from .servers import served

TARGET = "diagnosis"


@pytest.fixture(scope="module")
def bundle(built_project: Path) -> Path:
    return built_project / "models" / "bundle"


@pytest.fixture(scope="module")
def records(built_project: Path) -> list[dict]:
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet")
    return frame.drop(columns=TARGET).head(30).to_dict(orient="records")


def _client(bundle: Path, log: LogSettings | None) -> TestClient:
    settings = ServeSettings(bundle=bundle, log=log)
    return TestClient(create_app(load(settings), settings))


def _logged(directory: Path) -> pd.DataFrame:
    files = logged_files(directory)
    assert files, f"no closed log file in {directory}: {sorted(p.name for p in directory.iterdir())}"
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def _metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _v2_body(records: list[dict]) -> dict:
    names = list(records[0])
    inputs = [
        {"name": n, "datatype": "FP64", "shape": [len(records)], "data": [r[n] for r in records]}
        for n in names
    ]
    return {"id": "client-7", "inputs": inputs}


def test_every_answer_names_its_request_id(bundle, records):
    with _client(bundle, None) as client:
        given = client.post("/predict", json=records[:2], headers={"x-request-id": "trace-01:a.b_c"})
        assert given.headers["x-request-id"] == given.json()["request_id"] == "trace-01:a.b_c"
        made = [client.post("/predict", json=records[0]) for _ in range(2)]
        ids = [answer.json()["request_id"] for answer in made]
        assert ids[0] != ids[1] and all(
            a.headers["x-request-id"] == i for a, i in zip(made, ids, strict=True)
        )
        for hostile in ("has spaces", "x" * 129, "new\tline", "ünïcode"):
            answer = client.post("/predict", json=records[0], headers={"x-request-id": hostile.encode()})
            assert answer.status_code == 200
            assert answer.json()["request_id"] == answer.headers["x-request-id"] != hostile
        mlflow = client.post("/invocations", json={"dataframe_records": records[:2]})
        assert mlflow.json()["request_id"] == mlflow.headers["x-request-id"]
        v2 = client.post("/v2/models/model/infer", json=_v2_body(records[:2]))
        assert v2.status_code == 200, v2.text
        assert v2.json()["id"] == "client-7"  # the protocol's id is the client's
        assert v2.json()["parameters"]["request_id"] == v2.headers["x-request-id"]
        refused = client.post("/predict", json={"no_such_feature": 1}, headers={"x-request-id": "r-422"})
        assert refused.status_code == 422 and refused.headers["x-request-id"] == "r-422"
        assert "x-request-id" not in client.get("/health").headers  # probes carry no work


def test_the_log_holds_what_was_answered(bundle, records, tmp_path):
    directory = tmp_path / "log"
    with _client(bundle, LogSettings(directory, flush_seconds=0.05)) as client:
        answers = {
            "/predict": client.post("/predict", json=records[:10], headers={"x-request-id": "p"}).json(),
            "/invocations": client.post(
                "/invocations", json={"dataframe_records": records[10:20]}, headers={"x-request-id": "m"}
            ).json(),
            "/v2/infer": client.post(
                "/v2/models/model/infer", json=_v2_body(records[20:30]), headers={"x-request-id": "v"}
            ).json(),
        }
        client.post("/predict", json={"no_such_feature": 1})  # refused: not an answer, not logged
    assert not list(directory.glob(f"*{OPEN_SUFFIX}")), "the server closed its open file at shutdown"
    for file in logged_files(directory):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    logged = _logged(directory).sort_values(["time", "row"], kind="stable").reset_index(drop=True)
    assert list(logged["request_id"]) == ["p"] * 10 + ["m"] * 10 + ["v"] * 10
    assert list(logged["endpoint"]) == ["/predict"] * 10 + ["/invocations"] * 10 + ["/v2/infer"] * 10
    assert list(logged["row"]) == list(range(10)) * 3
    model_hash = json.loads((bundle / "manifest.json").read_text())["model_hash"]
    assert set(logged["model_hash"]) == {model_hash}
    sent = pd.DataFrame(records)
    for name in sent.columns:  # the validated inputs: float32, as the model computed in
        expected = sent[name].to_numpy(np.float32).astype(np.float64)
        np.testing.assert_array_equal(logged[f"input.{name}"].to_numpy(), expected, err_msg=name)
    labels = answers["/predict"]["labels"] + answers["/invocations"]["predictions"]
    assert list(logged["output.label"][:20]) == labels
    malignant = [p["malignant"] for p in answers["/predict"]["probabilities"]]
    assert list(logged["output.probability.malignant"][:10]) == pytest.approx(malignant, rel=1e-7)
    # Dictionaries only where values repeat: trying one on every float made closing a file 2.4x slower.
    columns = pq.ParquetFile(logged_files(directory)[0]).metadata.row_group(0)
    encodings = {
        columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["endpoint"] and "RLE_DICTIONARY" in encodings["output.label"]
    for plain in ("request_id", "input.mean_radius", "output.probability.malignant"):
        assert "RLE_DICTIONARY" not in encodings[plain], (plain, encodings[plain])


def test_files_rotate_by_size_and_every_closed_file_reads(bundle, records, tmp_path):
    directory = tmp_path / "log"
    with _client(bundle, LogSettings(directory, flush_seconds=0.02, max_file_bytes=1)) as client:
        for index in range(6):
            client.post("/predict", json=records[:5], headers={"x-request-id": f"r{index}"})
            time.sleep(0.06)  # a flush between requests: each closes the file the last one wrote
    files = logged_files(directory)
    assert len(files) >= 3, [f.name for f in files]
    assert sorted(_logged(directory)["request_id"].unique()) == [f"r{i}" for i in range(6)]


def test_a_full_queue_drops_and_counts_and_the_api_answers(bundle, records, tmp_path):
    directory = tmp_path / "log"
    settings = LogSettings(directory, flush_seconds=3600, max_queued_records=12)
    with _client(bundle, settings) as client:
        before = _metric(
            client.get("/metrics").text, "mlcd_prediction_log_dropped_total", reason="queue_full"
        )
        statuses = [client.post("/predict", json=records[:5]).status_code for _ in range(5)]
        after = _metric(client.get("/metrics").text, "mlcd_prediction_log_dropped_total", reason="queue_full")
    assert statuses == [200] * 5
    assert after - before == 15  # two requests (10 records) fit the queue of 12; three were dropped
    assert len(_logged(directory)) == 10  # the queued ones were written at shutdown


def _post(port: int, records: list[dict], request_id: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict",
        data=json.dumps(records).encode(),
        headers={"content-type": "application/json", "x-request-id": request_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


@pytest.mark.slow
def test_kill_9_loses_at_most_the_unflushed_records_and_never_a_closed_file(bundle, records, tmp_path):
    directory = tmp_path / "log"
    with served(bundle, "--log-dir", str(directory)) as (port, _):
        _post(port, records[:4], "closed-before")
    closed_before = {f: f.read_bytes() for f in logged_files(directory)}
    assert len(closed_before) == 1
    with served(bundle, "--log-dir", str(directory)) as (port, process):
        for index in range(5):
            _post(port, records[:3], f"flushed-{index}")
        deadline = time.monotonic() + 10
        while _metric(_metrics(port), "mlcd_prediction_log_records_total") < 15:
            assert time.monotonic() < deadline, "the writer never flushed"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    assert len(list(directory.glob(f"*{OPEN_SUFFIX}"))) == 1  # the killed writer's open stream
    with served(bundle, "--log-dir", str(directory)) as (port, _):
        pass  # a new log converts the stream no one holds
    assert not list(directory.glob(f"*{OPEN_SUFFIX}"))
    for file, content in closed_before.items():
        assert file.read_bytes() == content
    logged = _logged(directory)
    assert sorted(logged["request_id"].unique()) == ["closed-before"] + [f"flushed-{i}" for i in range(5)]
    assert len(logged) == 4 + 15
    assert all(f.suffix == CLOSED_SUFFIX for f in directory.iterdir())


@pytest.mark.slow
def test_a_full_disk_drops_and_counts_and_the_api_keeps_answering(bundle, records, small_disk):
    with served(bundle, "--log-dir", str(small_disk)) as (port, _):
        statuses = []
        for index in range(40):
            statuses.append(_post(port, records, f"r{index}"))
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while not _metric(_metrics(port), "mlcd_prediction_log_dropped_total", reason="write_error"):
            assert time.monotonic() < deadline, "nothing was dropped: the disk never filled"
            time.sleep(0.1)
        assert statuses == [200] * 40
        assert _post(port, records[:1], "after") == 200
    for file in logged_files(small_disk):  # whatever was closed reads whole
        pq.read_table(file)


def test_a_log_directory_that_cannot_take_files_is_one_line_before_any_port(bundle, tmp_path):
    occupied = tmp_path / "a-file"
    occupied.write_text("")
    done = run(
        ["mlcd", "serve", "--bundle", str(bundle), "--log-dir", str(occupied / "log")], tmp_path, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write the prediction log in "), done.stderr
    assert "pass a writable --log-dir" in lines[0] and "serving" not in done.stdout


def test_without_pyarrow_the_log_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as in the serving image
    with pytest.raises(
        ServeError, match=r"prediction log writes Parquet with pyarrow, which is not installed"
    ):
        check_directory(tmp_path)


def test_hand_offs_past_a_table_s_size_are_written_whole_and_in_order(bundle, records, tmp_path):
    from mlcd.serve.handoff import served
    from mlcd.serve.payload import to_batch
    from mlcd.serve.prediction_log import TABLE_RECORDS, PredictionLog

    model = load(ServeSettings(bundle=bundle))
    batch = to_batch(records[:2], model.layout, 10)
    result, values = model.answer(batch.numbers, batch.texts)
    sizes = [TABLE_RECORDS // 3, TABLE_RECORDS, 3]  # hand-offs of 2-record answers
    log = PredictionLog(LogSettings(tmp_path, flush_seconds=60), model.layout, "h", None, model.classes)
    taken = [[served(f"{n}-{i}", "/predict", batch, result, values, 1.0) for i in range(n)] for n in sizes]
    for answers in taken:
        log.take(answers)
    log.close()  # one flush: every hand-off above in one write
    logged = _logged(tmp_path)
    assert list(logged["request_id"]) == [a[1] for answers in taken for a in answers for _ in range(2)]
    assert list(logged["row"]) == [0, 1] * sum(sizes)
