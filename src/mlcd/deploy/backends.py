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
    port: int = 8080,
    state_dir: Path | None = None,
    namespace: str | None = None,
    context: str | None = None,
) -> Backend:
    if kind == "podman":
        from mlcd.deploy.podman_backend import PodmanBackend

        return PodmanBackend(environment, state_dir or default_state_dir(environment), port)
    if kind == "kubernetes":
        from mlcd.deploy.kubernetes import KubernetesBackend, kubectl_cli

        return KubernetesBackend(environment, kubectl_cli(namespace or f"mlcd-{environment}", context))
    raise DeployError(f"unknown deploy backend {kind!r}: use one of {', '.join(BACKENDS)}")
