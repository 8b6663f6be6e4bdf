"""Blue/green on Kubernetes, through kubectl: the manifests in deploy/kubernetes (kustomize).

Deployments mlcd-blue and mlcd-green run the two colours; the Service mlcd
selects the live one by its `mlcd.io/colour` label and carries the deploy state
in its `mlcd.io/deploy-state` annotation, so the state lives in the cluster and
CI jobs stay stateless. Switch and state are one `kubectl patch`.

Every cluster call goes through `Kubectl` (argv in, stdout out), so the state
machine is tested against a recorded kubectl; no cluster runs in the test suite.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlcd.deploy.state import DeployState
from mlcd.errors import DeployError

Kubectl = Callable[[list[str]], str]
STATE_ANNOTATION = "mlcd.io/deploy-state"
COLOUR_LABEL = "mlcd.io/colour"
SERVICE = "mlcd"
CONTAINER = "model"
# Run inside the colour's pod (the image has Python, no curl): GET /ready or POST records to /predict.
_IN_POD = (
    "import json, sys, urllib.request as u; "
    "body = sys.argv[2].encode() if len(sys.argv) > 2 else None; "
    "h = {'content-type': 'application/json'}; "
    "r = u.Request('http://127.0.0.1:8080' + sys.argv[1], data=body, headers=h); "
    "print(u.urlopen(r, timeout=30).read().decode())"
)


def kubectl_cli(namespace: str, context: str | None = None) -> Kubectl:
    def run(args: list[str]) -> str:
        command = ["kubectl", *(["--context", context] if context else []), "--namespace", namespace, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise DeployError(
                "kubectl is not installed; the kubernetes backend drives the cluster with it"
            ) from None
        if done.returncode != 0:
            raise DeployError(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()[-1500:]}")
        return done.stdout

    return run


@dataclass
class KubernetesBackend:
    environment: str
    kubectl: Kubectl

    def deployment(self, colour: str) -> str:
        return f"deployment/{SERVICE}-{colour}"

    def read_state(self) -> DeployState | None:
        service = json.loads(self.kubectl(["get", "service", SERVICE, "--output", "json"]))
        text = (service["metadata"].get("annotations") or {}).get(STATE_ANNOTATION)
        return DeployState.from_json(text) if text else None

    def start(self, colour: str, image: str) -> None:
        self.kubectl(["set", "image", self.deployment(colour), f"{CONTAINER}={image}"])

    def _in_pod(self, colour: str, path: str, body: Any = None) -> dict[str, Any]:
        args = [
            "exec",
            self.deployment(colour),
            "--container",
            CONTAINER,
            "--",
            "python3",
            "-c",
            _IN_POD,
            path,
        ]
        if body is not None:
            args.append(json.dumps(body))
        try:
            answer: dict[str, Any] = json.loads(self.kubectl(args))
            return answer
        except json.JSONDecodeError as exc:
            raise DeployError(
                f"{self.deployment(colour)} answered {path} with something not JSON: {exc}"
            ) from None

    def wait_ready(self, colour: str, timeout: float) -> str:
        # rollout status waits for every new pod's readiness probe (/ready).
        self.kubectl(["rollout", "status", self.deployment(colour), f"--timeout={int(timeout)}s"])
        return str(self._in_pod(colour, "/ready")["model_hash"])

    def predict(self, colour: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        return self._in_pod(colour, "/predict", records)

    def switch(self, state: DeployState) -> None:
        patch = {
            "metadata": {"annotations": {STATE_ANNOTATION: state.to_json()}},
            "spec": {"selector": {COLOUR_LABEL: state.live.colour}},
        }
        self.kubectl(["patch", "service", SERVICE, "--type", "merge", "--patch", json.dumps(patch)])

    def stop(self, colour: str) -> None:
        """A failed first deploy: undo the image change so the colour runs what it ran before."""
        self.kubectl(["rollout", "undo", self.deployment(colour)])
