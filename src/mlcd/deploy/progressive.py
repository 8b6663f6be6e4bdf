"""The deploy commands' core: pick the strategy, read the rollout spec once, say what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcd.deploy.analysis import Prometheus
from mlcd.deploy.bluegreen import Backend, Expected, deploy
from mlcd.deploy.rollout_spec import load_rollout
from mlcd.deploy.state import DeployState
from mlcd.errors import DeployError

STRATEGIES = ("bluegreen", "canary", "shadow")


def _live_line(state: DeployState, image: str) -> str:
    was = f", previous {state.previous.colour} kept for rollback" if state.previous else ""
    return f"{state.live.colour} is live with {image} (model {state.live.model_hash[:12]}){was}"


def run_deploy(
    backend: Backend,
    strategy: str,
    image: str,
    bundle: Path,
    spec_file: Path,
    overrides: dict[str, Any],
    promote_if_agree: float | None,
    timeout: float,
) -> str:
    """Deploy `image` by `strategy`; the line that says what is live now."""
    if strategy not in STRATEGIES:
        raise DeployError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if promote_if_agree is not None and (strategy != "shadow" or not 0 < promote_if_agree <= 1):
        raise DeployError("--promote-if-agree takes a share between 0 and 1, with --strategy shadow")
    expected = Expected.from_bundle(bundle)
    if strategy == "bluegreen":
        return _live_line(deploy(backend, image, expected, timeout), image)
    from mlcd.deploy.podman_backend import PodmanBackend

    if not isinstance(backend, PodmanBackend):
        raise DeployError(
            f"--strategy {strategy} runs on the podman backend; on Kubernetes `mlcd deploy render` writes "
            "the same rollout for Flagger and Argo Rollouts, which run it in the cluster"
        )
    spec = load_rollout(spec_file, overrides)
    if strategy == "canary":
        from mlcd.deploy.canary import canary

        state = canary(backend, image, expected, spec, Prometheus(spec.prometheus), timeout)
        return _live_line(state, image) + " after every canary step passed"
    from mlcd.deploy.shadow import shadow

    record, promoted = shadow(backend, image, expected, spec, promote_if_agree, timeout)
    if promoted is not None:
        return _live_line(promoted, image) + " after the shadow agreed"
    return f"{record.stable} keeps serving; the shadow {image} was stopped ({record.reason})"


def describe_status(backend: Any) -> list[str]:
    state: DeployState | None = backend.read_state()
    if state is None:
        return [f"nothing is deployed to {backend.environment}"]
    live = state.live
    lines = [f"live: {live.colour} {live.image} (model {live.model_hash[:12]}) since {state.switched_at}"]
    if state.previous:
        lines.append(f"previous: {state.previous.colour} {state.previous.image} (kept for mlcd rollback)")
    record = backend.read_rollout()
    if record is not None:
        lines += ["last rollout:", *record.describe()]
    return lines


def render_kubernetes(
    root: Path,
    strategy: str,
    spec_file: Path,
    prometheus: str | None,
    bundle: Path,
    output: Path,
    gateway: str,
) -> list[Path]:
    from mlcd.deploy.render import render

    if strategy != "canary":
        raise DeployError(f"render writes canaries only (Flagger, Argo Rollouts), not {strategy!r}")
    spec = load_rollout(spec_file, {"prometheus": prometheus})
    return render(root, spec, bool(Expected.from_bundle(bundle).classes), output, gateway)
