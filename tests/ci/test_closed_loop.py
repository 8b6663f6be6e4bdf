"""The closed loop on loopback, end to end, with the real pieces: `mlcd serve --log-dir` answers
traffic, Debian's Prometheus evaluates the committed rules on its gauges, Debian's Alertmanager
routes with the committed alertmanager.yml to the pipeline trigger API of the fake GitLab, and the
real .gitlab-ci.yml's `retrain` job (gitlab-ci-local) turns the logged, labelled answers into a new
data version, runs the pipeline and opens a merge request.

Two things are shortened, and only here: the rules' `for:` durations (15 to 30 minutes) become 0 s
and Alertmanager's group_wait 1 s, so a verdict takes seconds; the drift interval is 1 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from mlcd.http_client import free_port, wait_ready

from ..helpers import PROJECT_ROOT, Repo, rewritten_bundle, run, start_service
from ..system import apt_install
from .gitlab_ci_local import GitlabCiLocal

pytestmark = [pytest.mark.ci, pytest.mark.needs_node, pytest.mark.needs_promtool]
MONITORING = PROJECT_ROOT / "monitoring"
TARGET = "diagnosis"
TRIGGER_TOKEN = "trigger-token-from-a-secret"


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    body = json.load(urllib.request.urlopen(url, timeout=10))
    return list(body["data"]["result"])


def _until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")


class Loop:
    def __init__(self, base: Path, repo: Repo, trigger_url: str) -> None:
        self.base, self.repo = base, repo
        self.log_dir = base / "predictions"
        self.processes: list[subprocess.Popen[bytes]] = []
        bundle = rewritten_bundle(
            repo.path / "models" / "bundle",
            base / "bundle",
            lambda files: files["reference.json"].update(interval_seconds=1),
        )
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        self.server = subprocess.Popen(
            [sys.executable, "-m", "mlcd", "serve", "--bundle", str(bundle), "--port", str(port),
             "--log-dir", str(self.log_dir)],
            stdout=subprocess.DEVNULL, stderr=(base / "serve.log").open("wb"),
        )  # fmt: skip
        wait_ready(self.api, 30)
        self.alertmanager = self._alertmanager(trigger_url)
        self.prometheus = self._prometheus()

    def _alertmanager(self, trigger_url: str) -> str:
        rendered = subprocess.run(
            ["envsubst", "$GITLAB_TRIGGER_URL"],
            input=(MONITORING / "alertmanager.yml").read_text(),
            env={**os.environ, "GITLAB_TRIGGER_URL": trigger_url},
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        config = yaml.safe_load(rendered)
        config["route"]["group_wait"] = "1s"
        (self.base / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.processes.append(
            start_service(
                ["prometheus-alertmanager", f"--config.file={self.base / 'alertmanager.yml'}",
                 f"--storage.path={self.base / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--cluster.listen-address=", "--log.level=warn"],
                f"http://127.0.0.1:{port}/-/ready", self.base / "alertmanager.log", any_answer=False,
            )
        )  # fmt: skip
        return f"127.0.0.1:{port}"

    def _prometheus(self) -> str:
        rules = (MONITORING / "rules" / "mlcd.rules.yml").read_text()
        (self.base / "rules.yml").write_text(re.sub(r"for: \d+[smh]", "for: 0s", rules))
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(self.base / "rules.yml")]
        config["scrape_configs"][0]["static_configs"][0]["targets"] = [self.api.removeprefix("http://")]
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        (self.base / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.processes.append(
            start_service(
                ["prometheus", f"--config.file={self.base / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.base / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"],
                f"http://127.0.0.1:{port}/-/ready", self.base / "prometheus.log", any_answer=False,
            )
        )  # fmt: skip
        return f"http://127.0.0.1:{port}"

    def send(self, features: pd.DataFrame) -> list[dict[str, Any]]:
        answers = []
        for start in range(0, len(features), 100):
            batch = features.iloc[start : start + 100].to_dict(orient="records")
            reply = httpx.post(f"{self.api}/predict", json=batch, timeout=30)
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
        return answers

    def retrain_alerts(self) -> list[dict[str, Any]]:
        return _query(self.prometheus, 'ALERTS{loop="retrain", alertstate="firing"}')

    def stop_server(self) -> None:
        self.server.send_signal(signal.SIGTERM)  # a graceful stop closes the open log files
        self.server.wait(30)

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.kill()
        for process in self.processes:
            process.terminate()
            process.wait(10)


@pytest.fixture
def loop(developer: Repo, fake_gitlab_api, tmp_path: Path) -> Iterator[Loop]:
    apt_install("prometheus", "prometheus-alertmanager", "gettext-base",
                programs=("prometheus", "prometheus-alertmanager", "envsubst"))  # fmt: skip
    fake, url = fake_gitlab_api
    trigger = f"{url}/api/v4/projects/{fake.project}/ref/main/trigger/pipeline?token={TRIGGER_TOKEN}"
    running = Loop(tmp_path, developer, trigger)
    yield running
    running.close()


def test_a_shifted_feature_fires_its_alert_which_opens_a_retraining_merge_request(
    loop: Loop, gitlab: GitlabCiLocal, developer: Repo, fake_gitlab_api, tmp_path: Path
):
    fake, url = fake_gitlab_api
    train = pd.read_parquet(developer.path / "data" / "processed" / "train.parquet")
    # Training's own distribution: the window fills, every feature is judged, nothing fires.
    loop.send(train.sample(600, random_state=1, replace=True).drop(columns=TARGET))
    _until("a verdict on every feature", lambda: len(_query(loop.prometheus, "mlcd_feature_drifted")) == 30)
    _until("600 records in the window", lambda: _query(loop.prometheus, "mlcd_drift_window_records >= 600"))
    time.sleep(4)  # several evaluations and a group_wait
    assert _query(loop.prometheus, "max(mlcd_feature_drifted)")[0]["value"][1] == "0"
    assert loop.retrain_alerts() == [] and fake.triggered == []

    # One feature moves: its alert fires, and Alertmanager's webhook reaches GitLab's trigger API.
    shifted_rows = train.sample(1000, random_state=2, replace=True)
    shifted = shifted_rows.drop(columns=TARGET)
    # Served records are new ones: a spread of factors keeps them distinct (validate refuses duplicates).
    shifted["mean_radius"] *= np.random.default_rng(3).uniform(1.2, 1.4, len(shifted))
    answers = loop.send(shifted)
    fired = _until("MlcdFeatureDrift", loop.retrain_alerts)
    assert {(a["metric"]["alertname"], a["metric"].get("feature")) for a in fired} >= {
        ("MlcdFeatureDrift", "mean_radius")
    }
    call = _until("a pipeline trigger call", lambda: fake.triggered)[0]
    assert call.path == f"/api/v4/projects/{fake.project}/ref/main/trigger/pipeline?token={TRIGGER_TOKEN}"
    payload = json.loads(call.body)
    assert any(a["labels"].get("feature") == "mean_radius" for a in payload["alerts"])

    # Labels arrive for the shifted answers; the server stops, closing its log files.
    truth = shifted_rows[TARGET].astype(str).tolist()
    labels = [
        {"request_id": answer["request_id"], "row": row, "label": truth[100 * index + row]}
        for index, answer in enumerate(answers)
        for row in range(len(answer["labels"]))
    ]
    reply = httpx.post(f"{loop.api}/feedback", json=labels, timeout=30).json()
    assert reply["matched"] == 1000
    loop.stop_server()

    # GitLab would now run the triggered pipeline: its only job is retrain.
    trigger_payload = tmp_path / "TRIGGER_PAYLOAD"
    trigger_payload.write_bytes(call.body)
    pushed = tmp_path / "pushed.git"
    run(["git", "clone", "-q", "--bare", str(developer.path), str(pushed)], tmp_path)
    variables = {
        "CI_PIPELINE_SOURCE": "trigger",
        "CI_COMMIT_BRANCH": "main",
        "TRIGGER_PAYLOAD": str(trigger_payload),
        "MLCD_LOG_DIR": str(loop.log_dir),
        "CI_SERVER_URL": url,
        "CI_PROJECT_ID": fake.project,
        "GITLAB_TOKEN": "glpat-test-token",
        # The fake GitLab speaks only its API, not git: the branch goes to a bare repository.
        "MLCD_RETRAIN_PUSH_URL": str(pushed),
    }
    result = gitlab.run("retrain", variables=variables)
    assert result.results == {"retrain": "PASS"}, result.explain()

    (opened,) = fake.opened
    branch = opened["source_branch"]
    assert branch.startswith("retrain/") and opened["target_branch"] == "main"
    assert "Triggered by MlcdFeatureDrift (feature=mean_radius" in opened["description"]
    assert "| mean_radius | ks |" in opened["description"]
    (note,) = fake.notes.values()
    assert "<!-- mlcd-report -->" in note and "Served traffic against the training split" in note
    assert "1,000 labelled rows appended to `data/external/breast_cancer.parquet`" in note

    def at(ref: str, path: str) -> str:
        return run(["git", "--git-dir", str(pushed), "show", f"{ref}:{path}"], tmp_path).stdout

    source = "data/external/breast_cancer.parquet"
    assert yaml.safe_load(at(branch, "params.yaml"))["data"]["source"] == source
    assert json.loads(at(branch, "data/retrained.json"))["rows"] == 1000

    def external(ref: str) -> str:  # ingest's dependency on data/external/ (DVC hashes the folder)
        stages = yaml.safe_load(at(ref, "dvc.lock"))["stages"]
        return next(d["md5"] for d in stages["ingest"]["deps"] if d["path"] == "data/external")

    assert external(branch) != external("main")  # a new data version, recorded in the lock
    md5 = yaml.safe_load(at(branch, f"{source}.dvc"))["outs"][0]["md5"]
    remote_object = developer.remote / "files" / "md5" / md5[:2] / md5[2:]
    assert remote_object.is_file(), "the new data version is not in the DVC remote"
    data = pd.read_parquet(remote_object)
    assert len(data) == 569 + 1000 and set(data[TARGET]) == {"malignant", "benign"}
