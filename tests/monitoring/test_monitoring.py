"""Monitoring: the alert rules pass promtool (check and unit tests), and a real Prometheus scraping a
running API on loopback sees the requests we sent; every dashboard query runs on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from mlcd.http_client import free_port, wait_ready

from ..helpers import PROJECT_ROOT, Repo, start_service
from ..system import apt_install

pytestmark = pytest.mark.needs_promtool  # Debian's prometheus/promtool, installed with apt-get when missing
MONITORING = PROJECT_ROOT / "monitoring"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def promtool() -> str:
    apt_install("prometheus", programs=("prometheus", "promtool"))
    return "promtool"


def test_rules_are_valid_and_their_unit_tests_pass(promtool):
    check = subprocess.run(
        [promtool, "check", "rules", *map(str, (MONITORING / "rules").glob("*.yml"))],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", "mlcd.rules.test.yml"],
        cwd=MONITORING / "tests",
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    for name in ("prometheus.yml", "prometheus-rollouts.yml"):
        config = subprocess.run(
            [promtool, "check", "config", name], cwd=MONITORING, capture_output=True, text=True
        )
        assert config.returncode == 0, config.stdout + config.stderr


@pytest.fixture(scope="module")
def api(reproduced_repo: Repo) -> Iterator[str]:
    port = free_port()
    bundle = reproduced_repo.path / "models" / "bundle"
    env = {**os.environ, "MLCD_GIT_COMMIT": COMMIT}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlcd", "serve", "--bundle", str(bundle), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, 30)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def prometheus(promtool: str, api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The committed prometheus.yml and rules, scraping the API every second."""
    base = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(MONITORING / pattern) for pattern in config["rule_files"]]
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [api.removeprefix("http://")]
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_service(
        ["prometheus", f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        f"{url}/-/ready", base / "log", any_answer=False,
    )  # fmt: skip
    yield url
    process.terminate()
    process.wait(10)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    body = json.load(urllib.request.urlopen(url, timeout=10))
    assert body["status"] == "success", body
    return body["data"]["result"]


def by(results: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in results}


def wait_for(prometheus: str, expr: str, value: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(prometheus, expr)
        if result and float(result[0]["value"][1]) == value:
            return
        time.sleep(0.5)
    raise AssertionError(f"{expr} never reached {value}: {query(prometheus, expr)}")


def test_prometheus_scrapes_the_counts_we_caused(api, prometheus, reproduced_repo):
    bundle = reproduced_repo.path / "models" / "bundle"
    examples = json.loads((bundle / "examples.json").read_text())
    for _ in range(6):
        assert httpx.post(f"{api}/predict", json=examples["records"]).status_code == 200
    for _ in range(2):
        assert httpx.post(f"{api}/predict", json=[{"mean_radius": "x"}]).status_code == 422
    wait_for(prometheus, 'sum(mlcd_requests_total{endpoint="/predict"})', 8)

    statuses = by(query(prometheus, 'sum by (status) (mlcd_requests_total{endpoint="/predict"})'), "status")
    assert statuses == {"200": 6, "422": 2}
    predicted = by(query(prometheus, "sum by (label) (mlcd_predictions_total)"), "label")
    assert predicted == {label: 6 * n for label, n in Counter(examples["labels"]).items()}
    (model,) = query(prometheus, "mlcd_model_info")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert model["metric"]["model_hash"] == manifest["model_hash"] and model["metric"]["git_commit"] == COMMIT
    shares = by(query(prometheus, "mlcd_training_class_share"), "label")
    balance = json.loads((bundle / "schema.json").read_text())["class_balance"]
    assert shares == pytest.approx(balance)
    count = query(prometheus, 'sum(mlcd_request_duration_seconds_count{endpoint="/predict"})')
    assert float(count[0]["value"][1]) == 8


def test_rules_load_and_every_dashboard_query_runs(prometheus):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        groups = json.load(urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10))["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(
            rule.get("lastEvaluation", "").startswith("2") and rule["health"] == "ok" for rule in rules
        ):
            break
        time.sleep(0.5)
    assert {group["name"] for group in groups} == {"mlcd.recording", "mlcd.alerts"}
    assert all(rule["health"] == "ok" for rule in rules), [r for r in rules if r["health"] != "ok"]

    dashboard = json.loads((MONITORING / "grafana" / "mlcd-dashboard.json").read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Model in use", "Latency quantiles (/predict)", "Predicted class mix vs training"} <= titles
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$environment", ".*")
            query(prometheus, expr)  # asserts the query parses and runs
    # The model panel shows data once Prometheus has scraped the API (whichever test ran first).
    model_panel = dashboard["panels"][0]["targets"][0]["expr"].replace("$environment", ".*")
    deadline = time.monotonic() + 30
    while not query(prometheus, model_panel) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert query(prometheus, model_panel)
