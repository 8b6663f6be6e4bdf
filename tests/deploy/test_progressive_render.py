"""The rollout's checks as PromQL and as Kubernetes objects, offline: every query passes promtool and
computes what it says on known series (the class-mix distance equals scipy's Jensen-Shannon
distance), and `mlcd deploy render`'s Flagger and Argo Rollouts objects validate strictly against
the CRDs' published OpenAPI schemas, vendored in deploy/kubernetes/crd-schemas (nothing fetched)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from scipy.spatial.distance import jensenshannon

from mlcd.deploy import promql
from mlcd.deploy.canary import versions_of
from mlcd.deploy.render import ARGO, FLAGGER
from mlcd.deploy.rollout_spec import RolloutSpec, Thresholds, load_rollout
from mlcd.errors import ConfigError

from ..helpers import PROJECT_ROOT, Repo
from ..system import apt_install

SCHEMAS = PROJECT_ROOT / "deploy" / "kubernetes" / "crd-schemas"
LOCAL = versions_of("e", "green", "blue", 300)
# Concrete values for the engines' template variables, so promtool can parse their queries.
TEMPLATE_VALUES = {
    "{{ namespace }}": "mlcd-production", "{{ target }}": "mlcd", "{{ interval }}": "1m",
    "{{args.namespace}}": "mlcd-production", "{{args.canary-hash}}": "abc", "{{args.stable-hash}}": "def",
    "{{args.window}}": "1m",
}  # fmt: skip


@pytest.fixture(scope="module")
def promtool() -> str:
    apt_install("prometheus", programs=("prometheus", "promtool"))
    return "promtool"


def _filled(query: str) -> str:
    for template, value in TEMPLATE_VALUES.items():
        query = query.replace(template, value)
    assert "{{" not in query, query
    return query


@pytest.mark.needs_promtool
@pytest.mark.parametrize("classifier", [True, False], ids=["classifier", "regressor"])
def test_every_engines_queries_pass_promtool(promtool, classifier, tmp_path):
    rules = []
    for engine, versions in (("local", LOCAL), ("flagger", FLAGGER), ("argo", ARGO)):
        for check in promql.checks(versions, Thresholds(), classifier):
            for part, query in (
                ("check", check.query),
                ("candidate", check.candidate),
                ("stable", check.stable),
            ):
                rules.append({"record": f"mlcd:{engine}_{check.name}_{part}", "expr": _filled(query)})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "checks", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _series(colour: str, name: str, per_minute: float, **labels: str) -> dict[str, str]:
    matchers = ",".join(f'{k}="{v}"' for k, v in {"environment": "e", "colour": colour, **labels}.items())
    return {"series": f"{name}{{{matchers}}}", "values": f"0+{per_minute:g}x20"}


def _expect(promtool: str, tmp_path: Path, series: list[dict[str, str]], checks: dict[str, float]) -> None:
    """promtool evaluates each query at 10m over the series; each must be within 1e-9 of its value."""
    tests = [
        {
            "expr": f"abs(({query}) - {value!r}) < bool 1e-9",
            "eval_time": "10m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
        for query, value in checks.items()
    ]
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(document))
    done = subprocess.run(
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.needs_promtool
def test_the_checks_compute_what_they_say_on_known_series(promtool, tmp_path):
    stable = {"benign": 63.0, "malignant": 37.0, "unsure": 0.0}
    candidate = {"benign": 90.0, "malignant": 5.0, "unsure": 5.0}  # a class the stable version never said
    series = [
        _series("blue", "mlcd_predictions_total", n, label=label) for label, n in stable.items() if n
    ] + [_series("green", "mlcd_predictions_total", n, label=label) for label, n in candidate.items()]
    # 100 requests a minute each; the candidate answers 20 of them with a 500, the stable one 1.
    for colour, ok, failed in (("blue", 99, 1), ("green", 80, 20)):
        series.append(
            _series(colour, "mlcd_requests_total", ok, endpoint="/predict", method="POST", status="200")
        )
        series.append(
            _series(colour, "mlcd_requests_total", failed, endpoint="/predict", method="POST", status="500")
        )
    # Latency: the stable version answers all in 5-10 ms, the candidate half in 50-100 ms.
    latencies = {
        "blue": {"0.005": 0, "0.01": 100, "0.05": 100, "0.1": 100, "+Inf": 100},
        "green": {"0.005": 0, "0.01": 50, "0.05": 50, "0.1": 100, "+Inf": 100},
    }
    for colour, buckets in latencies.items():
        for le, n in buckets.items():
            series.append(
                _series(colour, "mlcd_request_duration_seconds_bucket", n, endpoint="/predict", le=le)
            )
    p = np.array([candidate[k] for k in stable]) / sum(candidate.values())
    q = np.array([stable[k] for k in stable]) / sum(stable.values())
    checks = {c.name: c for c in promql.checks(LOCAL, Thresholds(), classifier=True)}
    stable_p99 = 0.005 + 0.005 * 0.99  # linear within the 5-10 ms bucket, as histogram_quantile does
    candidate_p99 = 0.05 + 0.05 * 0.98
    _expect(promtool, tmp_path, series, {
        checks["prediction_mix"].query: float(jensenshannon(p, q, base=2)),
        checks["error_ratio"].query: 0.20 - 0.01,
        # the stable p99 is under the floor (25 ms / ratio 2): the candidate is held to 12.5 ms
        checks["latency_p99"].query: candidate_p99 / max(stable_p99, 0.025 / 2),
        promql.requests(LOCAL.candidate, LOCAL.window): 500.0,  # 100 a minute over the 5m window
    })  # fmt: skip


@pytest.mark.needs_promtool
def test_the_regression_shift_is_in_stable_standard_deviations(promtool, tmp_path):
    # Stable: mean 10, sd 2 (E[x^2] = 104); the candidate's mean is 11: half a standard deviation.
    series = []
    for colour, count, total, squares in (("blue", 100, 1000.0, 10400.0), ("green", 100, 1100.0, 12500.0)):
        series += [
            _series(colour, "mlcd_predicted_value_count", count),
            _series(colour, "mlcd_predicted_value_sum", total),
            _series(colour, "mlcd_predicted_value_squares_total", squares),
        ]
    (shift,) = [
        c for c in promql.checks(LOCAL, Thresholds(), classifier=False) if c.name == "prediction_shift"
    ]
    _expect(promtool, tmp_path, series, {shift.query: 0.5})


def _strict(schema: Any) -> Any:
    """The CRD schema as the apiserver's strict field validation reads it: an object that lists its
    properties and does not preserve unknown fields takes no others (structural schemas prune them)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        closed = "properties" in schema and "additionalProperties" not in schema
        if closed and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _validate(document: dict[str, Any]) -> None:
    index = json.loads((SCHEMAS / "index.json").read_text())
    key = f"{document['apiVersion']}/{document['kind']}"
    schema = _strict(json.loads((SCHEMAS / index[key]["file"]).read_text()))
    schema["properties"].setdefault("metadata", {"type": "object"})
    jsonschema.Draft7Validator(schema).validate(document)


@pytest.mark.needs_kubectl
def test_render_writes_flagger_and_argo_objects_that_validate_strictly(reproduced_repo: Repo, tmp_path):
    reproduced_repo.mlcd(
        "deploy", "render", "--output", str(tmp_path), "--prometheus", "http://prometheus:9090",
        "--gateway", "public.gateways",
    )  # fmt: skip
    flagger = list(yaml.safe_load_all((tmp_path / "flagger.yaml").read_text()))
    argo = list(yaml.safe_load_all((tmp_path / "argo-rollouts.yaml").read_text()))
    kinds = sorted(d["kind"] for d in flagger + argo)
    assert kinds == ["AnalysisTemplate", "Canary", "Deployment", *["MetricTemplate"] * 3, "Rollout"]
    for document in flagger + argo:
        if document["kind"] != "Deployment":
            _validate(document)
    spec = load_rollout(reproduced_repo.path / "deploy" / "rollout.yaml")
    (canary,) = [d for d in flagger if d["kind"] == "Canary"]
    assert canary["spec"]["analysis"]["stepWeights"] == [round(s) for s in spec.canary.steps]
    assert canary["spec"]["analysis"]["threshold"] == spec.canary.failure_limit
    assert canary["spec"]["service"]["gatewayRefs"] == [{"name": "public", "namespace": "gateways"}]
    # One owner: the templates' queries are promql.py's, for Flagger's pods
    expected = {
        c.name.replace("_", "-"): c.query for c in promql.checks(FLAGGER, spec.checks, classifier=True)
    }
    templates = {
        d["metadata"]["name"].removeprefix("mlcd-"): d for d in flagger if d["kind"] == "MetricTemplate"
    }
    assert {name: t["spec"]["query"] for name, t in templates.items()} == expected
    assert {t["spec"]["provider"]["address"] for t in templates.values()} == {"http://prometheus:9090"}
    (analysis,) = [d for d in argo if d["kind"] == "AnalysisTemplate"]
    argo_queries = {
        c.name.replace("_", "-"): c.query for c in promql.checks(ARGO, spec.checks, classifier=True)
    }
    for metric in analysis["spec"]["metrics"]:  # the same checks, gated on the minimum of requests
        gate = f"{promql.requests(ARGO.candidate, ARGO.window)} >= {spec.canary.min_requests}"
        assert (
            metric["provider"]["prometheus"]["query"] == f"({argo_queries[metric['name']]}) and on() ({gate})"
        )
    # The deployment Flagger targets and the Rollout's pods are the blue/green pod template
    (deployment,) = [d for d in flagger if d["kind"] == "Deployment"]
    (rollout,) = [d for d in argo if d["kind"] == "Rollout"]
    committed = yaml.safe_load((PROJECT_ROOT / "deploy/kubernetes/base/colour/deployment.yaml").read_text())
    assert deployment == committed and rollout["spec"]["template"] == committed["spec"]["template"]
    # The Deployment passes the same strict validation as the kustomize overlays
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    from ..helpers import VENV_BIN

    done = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", str(tmp_path / "deployment.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_rollout_spec_with_bad_keys_names_each(tmp_path):
    path = tmp_path / "rollout.yaml"
    path.write_text("canary:\n  steps: [50, 10]\n  intervl: 3\nchecks:\n  error_ratio: 2\n")
    with pytest.raises(ConfigError) as raised:
        load_rollout(path)
    problems = str(raised.value)
    assert "canary.steps" in problems and "must rise" in problems
    assert "canary.intervl: unknown key" in problems and "interval_seconds" in problems
    assert "checks.error_ratio" in problems
    assert load_rollout(tmp_path / "absent.yaml") == RolloutSpec()  # no file: the defaults
    spec = load_rollout(path.with_name("none.yaml"), {"canary.steps": [5.0, 20.0], "prometheus": None})
    assert spec.canary.steps == [5.0, 20.0] and spec.prometheus == RolloutSpec().prometheus
