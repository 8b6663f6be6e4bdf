"""Kubernetes: manifests rendered and strictly validated offline; the blue/green state machine driven
through a recorded kubectl (no cluster can run here, so no real apiserver answers these calls)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcd.deploy.bluegreen import Expected, deploy, rollback
from mlcd.deploy.kubernetes import STATE_ANNOTATION, KubernetesBackend
from mlcd.errors import DeployError

from ..helpers import PROJECT_ROOT, VENV_BIN

KUSTOMIZE = PROJECT_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("staging", "production")


def render(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_passes_strict_validation(overlay, tmp_path):
    docs = render(overlay)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == [
        "Deployment/mlcd-blue",
        "Deployment/mlcd-green",
        "HorizontalPodAutoscaler/mlcd-blue",
        "HorizontalPodAutoscaler/mlcd-green",
        f"Namespace/mlcd-{overlay}",
        "PodDisruptionBudget/mlcd-blue",
        "PodDisruptionBudget/mlcd-green",
        "Service/mlcd",
    ]
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", str(rendered)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_probed_limited_non_root_and_read_only(overlay):
    docs = {f"{d['kind']}/{d['metadata']['name']}": d for d in render(overlay)}
    for colour in ("blue", "green"):
        deployment = docs[f"Deployment/mlcd-{colour}"]
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["mlcd.io/colour"] == colour
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert set(container["resources"]) == {"requests", "limits"}
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        hpa = docs[f"HorizontalPodAutoscaler/mlcd-{colour}"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"mlcd-{colour}"
        pdb = docs[f"PodDisruptionBudget/mlcd-{colour}"]
        assert pdb["spec"]["selector"]["matchLabels"]["mlcd.io/colour"] == colour
    assert docs["Service/mlcd"]["spec"]["selector"]["mlcd.io/colour"] == "blue"


class RecordedKubectl:
    """Plays a cluster for kubectl: the Service and each Deployment's image, and records every call."""

    def __init__(self, answers: dict[str, dict[str, Any]], broken: frozenset[str] = frozenset()) -> None:
        self.answers = answers  # image -> {"model_hash":..., "predict": {...}}
        self.broken = broken  # images whose rollout never becomes ready
        self.images = {"blue": "registry/mlcd:placeholder", "green": "registry/mlcd:placeholder"}
        self.history = {"blue": [], "green": []}
        self.service: dict[str, Any] = {
            "metadata": {"annotations": {STATE_ANNOTATION: ""}},
            "spec": {"selector": {}},
        }
        self.calls: list[str] = []

    def __call__(self, args: list[str]) -> str:
        verb = args[0]
        if verb == "exec":
            path = args[args.index("-c") + 2]
            self.calls.append(f"exec {args[1]} {path}")
        elif verb == "patch":
            self.calls.append(f"patch service selector={json.loads(args[-1])['spec']['selector']}")
        else:
            self.calls.append(" ".join(args))
        if verb == "get":
            return json.dumps(self.service)
        colour = args[2].removeprefix("deployment/mlcd-") if len(args) > 2 else ""
        if verb == "set":
            self.history[colour].append(self.images[colour])
            self.images[colour] = args[3].split("=", 1)[1]
        elif verb == "rollout" and args[1] == "status" and self.images[colour] in self.broken:
            raise DeployError(f'deployment "mlcd-{colour}" exceeded its progress deadline')
        elif verb == "rollout" and args[1] == "undo":
            self.images[colour] = self.history[colour].pop()
        elif verb == "exec":
            colour = args[1].removeprefix("deployment/mlcd-")
            answer = self.answers[self.images[colour]]
            if path == "/ready":
                return json.dumps({"status": "ready", "model_hash": answer["model_hash"]})
            return json.dumps(answer["predict"])
        elif verb == "patch":
            body = json.loads(args[-1])
            self.service["metadata"]["annotations"].update(body["metadata"]["annotations"])
            self.service["spec"]["selector"].update(body["spec"]["selector"])
        return ""

    def live(self) -> str:
        return self.service["spec"]["selector"]["mlcd.io/colour"]


@pytest.fixture
def expected(reproduced_repo) -> Expected:
    return Expected.from_bundle(reproduced_repo.path / "models" / "bundle")


def api_answer(expected: Expected, labels: list[str] | None = None) -> dict[str, Any]:
    """What /predict returns for the bundle's examples: labels and {class: probability} rows."""
    rows = [dict(zip(expected.classes, row, strict=True)) for row in expected.examples.probabilities or []]
    return {"labels": labels or expected.examples.labels, "probabilities": rows}


def test_deploy_broken_deploy_and_rollback_make_the_designed_kubectl_calls(expected):
    good = {"model_hash": expected.model_hash, "predict": api_answer(expected)}
    cluster = RecordedKubectl({"r/m:v1": good, "r/m:v2": good}, broken=frozenset({"r/m:v3"}))
    backend = KubernetesBackend("staging", cluster)

    first = deploy(backend, "r/m:v1", expected, timeout=30)
    assert (first.live.colour, first.previous) == ("blue", None)
    assert cluster.calls == [
        "get service mlcd --output json",
        "set image deployment/mlcd-blue model=r/m:v1",
        "rollout status deployment/mlcd-blue --timeout=30s",
        "exec deployment/mlcd-blue /ready",
        "exec deployment/mlcd-blue /predict",
        "patch service selector={'mlcd.io/colour': 'blue'}",
    ]

    cluster.calls.clear()
    second = deploy(backend, "r/m:v2", expected, timeout=30)
    assert (second.live.colour, second.previous.image) == ("green", "r/m:v1")
    assert cluster.calls[1:3] == [
        "set image deployment/mlcd-green model=r/m:v2",
        "rollout status deployment/mlcd-green --timeout=30s",
    ]
    assert cluster.live() == "green"

    cluster.calls.clear()
    with pytest.raises(
        DeployError, match=r"deploy of r/m:v3 failed, traffic not switched; green \(r/m:v2\) keeps"
    ):
        deploy(backend, "r/m:v3", expected, timeout=30)
    assert cluster.calls == [
        "get service mlcd --output json",
        "set image deployment/mlcd-blue model=r/m:v3",
        "rollout status deployment/mlcd-blue --timeout=30s",
        # the rollback target comes back before the error is reported
        "set image deployment/mlcd-blue model=r/m:v1",
        "rollout status deployment/mlcd-blue --timeout=30s",
        "exec deployment/mlcd-blue /ready",
    ]
    assert cluster.live() == "green" and cluster.images["blue"] == "r/m:v1"

    cluster.calls.clear()
    back = rollback(backend, timeout=30)
    assert (back.live.image, back.previous.image) == ("r/m:v1", "r/m:v2")
    assert cluster.calls == [
        "get service mlcd --output json",
        "rollout status deployment/mlcd-blue --timeout=30s",
        "exec deployment/mlcd-blue /ready",
        "patch service selector={'mlcd.io/colour': 'blue'}",
    ]
    state = json.loads(cluster.service["metadata"]["annotations"][STATE_ANNOTATION])
    assert state["live"]["colour"] == "blue" and state["previous"]["image"] == "r/m:v2"


def test_wrong_answers_never_switch_and_a_first_failure_undoes_the_rollout(expected):
    wrong = api_answer(expected, labels=list(reversed(expected.examples.labels or [])))
    cluster = RecordedKubectl({"r/m:bad": {"model_hash": expected.model_hash, "predict": wrong}})
    with pytest.raises(DeployError, match="answers the bundle's 5 example records wrongly"):
        deploy(KubernetesBackend("production", cluster), "r/m:bad", expected, timeout=5)
    assert cluster.calls[-1] == "rollout undo deployment/mlcd-blue"
    assert cluster.service["spec"]["selector"] == {}
    assert not any(call.startswith("patch") for call in cluster.calls)


def test_rollback_without_a_previous_release_says_so(expected):
    cluster = RecordedKubectl(
        {"r/m:v1": {"model_hash": expected.model_hash, "predict": api_answer(expected)}}
    )
    backend = KubernetesBackend("staging", cluster)
    with pytest.raises(DeployError, match="nothing is deployed to staging"):
        rollback(backend)
    deploy(backend, "r/m:v1", expected, timeout=5)
    with pytest.raises(DeployError, match="no previous release to roll back to"):
        rollback(backend)


def test_kubectl_cli_reports_a_missing_binary(monkeypatch):
    from mlcd.deploy.kubernetes import kubectl_cli

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent / "nowhere"))
    with pytest.raises(DeployError, match="kubectl is not installed"):
        kubectl_cli("mlcd-staging")(["get", "service", "mlcd"])
