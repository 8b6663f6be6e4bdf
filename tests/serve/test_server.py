"""`mlcd serve` as a real process: uvicorn workers, and metrics summed across them."""

import json
import urllib.request
from contextlib import contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .servers import served as served_process


@contextmanager
def served(bundle, *args, cwd=None):
    with served_process(bundle, *args, cwd=cwd) as (port, _):
        yield f"http://127.0.0.1:{port}"


def post_json(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.e2e
def test_two_workers_serve_and_report_metrics_together(reproduced_repo):
    bundle = reproduced_repo.path / "models" / "bundle"
    record = json.loads((bundle / "examples.json").read_text())["records"][0]
    with served(bundle, "--workers", "2") as url:
        for _ in range(20):
            assert len(post_json(f"{url}/predict", [record])["labels"]) == 1
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    totals = {
        (s.name, s.labels.get("endpoint"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert totals[("mlcd_requests_total", "/predict", "200")] == 20
    assert any(name == "mlcd_model_info" for name, *_ in totals)


@pytest.mark.e2e
def test_version_reports_the_commit_whose_dvc_lock_records_the_bundle(repo_copy):
    head = repo_copy.run("git", "rev-parse", "HEAD").stdout.strip()
    bundle = repo_copy.path / "models" / "bundle"
    with served(bundle, cwd=repo_copy.path) as url:
        version = json.loads(urllib.request.urlopen(f"{url}/version", timeout=5).read())
        assert version["git_commit"] == head
        assert (
            post_json(f"{url}/predict", json.loads((bundle / "examples.json").read_text())["records"][0])[
                "model"
            ]["git_commit"]
            == head
        )
    with served(bundle, "--git-commit", "feedface", cwd=repo_copy.path) as url:
        assert (
            json.loads(urllib.request.urlopen(f"{url}/version", timeout=5).read())["git_commit"] == "feedface"
        )
    (bundle / "examples.json").unlink()  # the bundle no longer is what HEAD recorded ...
    (bundle / "examples.json").write_text("{}")
    from mlcd.provenance import bundle_commit

    assert bundle_commit(repo_copy.path, bundle) is None  # ... so no commit is claimed for it
