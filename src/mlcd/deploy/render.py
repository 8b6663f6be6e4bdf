"""`mlcd deploy render`: the rollout spec as Kubernetes progressive delivery, for Flagger (a Canary on
the Gateway API with MetricTemplates) and Argo Rollouts (a Rollout with an AnalysisTemplate).

Both take their queries from promql.py, as the local canary does; only the label matchers that
pick the candidate's and the stable pods' series differ. The pod template is the blue/green
Deployment's (deploy/kubernetes/base/colour/deployment.yaml), so both paths run the same pod.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlcd.deploy import promql
from mlcd.deploy.rollout_spec import RolloutSpec

DEPLOYMENT = Path("deploy/kubernetes/base/colour/deployment.yaml")
NAME = "mlcd"

# Flagger scales the target Deployment `mlcd` as the canary and copies it to `mlcd-primary`;
# Prometheus' Kubernetes discovery labels series with namespace and pod. Flagger's documented pod
# patterns: the canary's pods have two generated parts, the primary's one more ("primary-").
FLAGGER = promql.Versions(
    candidate='namespace="{{ namespace }}",pod=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"',
    stable='namespace="{{ namespace }}",pod=~"{{ target }}-primary-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"',
    window="{{ interval }}",
)
# Argo Rollouts passes the two ReplicaSets' pod-template hashes; Prometheus keeps the pod label
# rollouts-pod-template-hash as rollouts_pod_template_hash (labelmap of __meta_kubernetes_pod_label_*).
ARGO = promql.Versions(
    candidate='namespace="{{args.namespace}}",rollouts_pod_template_hash="{{args.canary-hash}}"',
    stable='namespace="{{args.namespace}}",rollouts_pod_template_hash="{{args.stable-hash}}"',
    window="{{args.window}}",
)


def _metric_name(check: promql.Check) -> str:
    """A check's name as Kubernetes names it (no underscores)."""
    return check.name.replace("_", "-")


def _gated(check: promql.Check, versions: promql.Versions, minimum: int) -> str:
    """The check's query, empty while the candidate has answered fewer than `minimum` requests: Argo
    calls an empty result inconclusive (neither condition holds)."""
    return f"({check.query}) and on() ({promql.requests(versions.candidate, versions.window)} >= {minimum})"


def flagger(
    spec: RolloutSpec, deployment: dict[str, Any], classifier: bool, gateway: str
) -> list[dict[str, Any]]:
    canary, window = spec.canary, f"{round(spec.canary.interval_seconds)}s"
    checks = promql.checks(FLAGGER, spec.checks, classifier)
    templates: list[dict[str, Any]] = [
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": f"{NAME}-{_metric_name(check)}"},
            "spec": {"provider": {"type": "prometheus", "address": spec.prometheus}, "query": check.query},
        }
        for check in checks
    ]
    gateway_name, _, gateway_namespace = gateway.partition(".")
    resource: dict[str, Any] = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": NAME},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "progressDeadlineSeconds": round(canary.inconclusive_deadline_seconds),
            "service": {
                "port": 80,
                "targetPort": 8080,
                "gatewayRefs": [
                    {"name": gateway_name, **({"namespace": gateway_namespace} if gateway_namespace else {})}
                ],
            },
            "analysis": {
                "interval": window,
                "threshold": canary.failure_limit,
                "stepWeights": [round(step) for step in canary.steps],
                "metrics": [
                    {
                        "name": _metric_name(check),
                        "templateRef": {"name": template["metadata"]["name"]},
                        "thresholdRange": {"max": check.limit},
                        "interval": window,
                    }
                    for check, template in zip(checks, templates, strict=True)
                ],
            },
        },
    }
    return [deployment, resource, *templates]


def argo(spec: RolloutSpec, deployment: dict[str, Any], classifier: bool) -> list[dict[str, Any]]:
    canary, window = spec.canary, f"{round(spec.canary.interval_seconds)}s"
    checks = promql.checks(ARGO, spec.checks, classifier)
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": NAME},
        "spec": {
            "args": [
                {"name": "namespace"},
                {"name": "canary-hash"},
                {"name": "stable-hash"},
                {"name": "window", "value": window},
            ],
            "metrics": [
                {
                    "name": _metric_name(check),
                    "interval": window,
                    "failureLimit": canary.failure_limit - 1,  # Argo fails the run when failures exceed it
                    "successCondition": f"len(result) > 0 && result[0] <= {check.limit}",
                    "failureCondition": f"len(result) > 0 && result[0] > {check.limit}",
                    "provider": {
                        "prometheus": {
                            "address": spec.prometheus,
                            "query": _gated(check, ARGO, canary.min_requests),
                        }
                    },
                }
                for check in checks
            ],
        },
    }
    steps: list[dict[str, Any]] = []
    for weight in canary.steps:
        steps += [{"setWeight": round(weight)}, {"pause": {"duration": window}}]
    pod = deployment["spec"]
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME, "labels": deployment["metadata"].get("labels", {})},
        "spec": {
            "replicas": pod.get("replicas", 2),
            "revisionHistoryLimit": pod.get("revisionHistoryLimit", 5),
            "selector": pod["selector"],
            "template": pod["template"],
            "progressDeadlineSeconds": round(canary.inconclusive_deadline_seconds),
            "strategy": {
                "canary": {
                    "steps": steps,
                    "analysis": {
                        "templates": [{"templateName": NAME}],
                        "startingStep": 1,
                        "args": [
                            {
                                "name": "namespace",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                            {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                            {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                        ],
                    },
                }
            },
        },
    }
    return [rollout, template]


def render(root: Path, spec: RolloutSpec, classifier: bool, output: Path, gateway: str) -> list[Path]:
    """Write flagger.yaml and argo-rollouts.yaml into `output`; return their paths."""
    deployment = yaml.safe_load((root / DEPLOYMENT).read_text(encoding="utf-8"))
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, documents in (
        ("flagger.yaml", flagger(spec, deployment, classifier, gateway)),
        ("argo-rollouts.yaml", argo(spec, deployment, classifier)),
    ):
        path = output / name
        header = "# Written by `mlcd deploy render` from the rollout spec; regenerate it, do not edit.\n"
        path.write_text(header + yaml.safe_dump_all(documents, sort_keys=False, width=1000), encoding="utf-8")
        written.append(path)
    return written
