"""Pick a backend from the CLI's options."""

from __future__ import annotations

import os
from pathlib import Path

from mlcd.deploy.bluegreen import Backend
from mlcd.errors import DeployError

BACKENDS = ("podman", "kubernetes")


def default_state_dir(environment: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mlcd" / "deploy" / environment


def make_backend(
    kind: str,
    environment: str,
    *,
    port: int | None = None,
    state_dir: Path | None = None,
    namespace: str | None = None,
    context: str | None = None,
) -> Backend:
    if kind == "podman":
        from mlcd.deploy.podman_backend import PodmanBackend, recorded_port

        state_dir = state_dir or default_state_dir(environment)
        return PodmanBackend(environment, state_dir, recorded_port(state_dir) if port is None else port)
    if kind == "kubernetes":
        from mlcd.deploy.kubernetes import KubernetesBackend, kubectl_cli

        return KubernetesBackend(environment, kubectl_cli(namespace or f"mlcd-{environment}", context))
    raise DeployError(f"unknown deploy backend {kind!r}: use one of {', '.join(BACKENDS)}")


def undeploy(target: Backend, environment: str) -> None:
    """Remove an environment: both colours, its proxy and its state. Only podman's lives on this host."""
    teardown = getattr(target, "teardown", None)
    if teardown is None:
        raise DeployError(
            f"undeploy removes podman deployments only; for kubernetes delete the namespace "
            f"(`kubectl delete namespace mlcd-{environment}`), which holds both colours"
        )
    teardown()
