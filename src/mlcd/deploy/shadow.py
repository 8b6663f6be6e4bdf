"""Shadow: the candidate gets a copy of every live request (nginx `mirror`) and clients get only the
stable colour's answers. After a duration or a number of requests the mirror stops and the report
says how often the candidate agreed with the stable version, its error ratio and its latency.

Agreement is measured on the mirrored requests the judge kept (shadow.compared_requests): each is
asked of the stable colour once more, directly on its loopback port, and the two answers compared
record by record (a class equal, a value within shadow.tolerance). The stable models are
deterministic, so this is the answer its client got. The candidate is promoted only when asked
(`--promote-if-agree`); otherwise the idle colour goes back to the rollback target.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from mlcd.console import info
from mlcd.deploy.bluegreen import Expected, promote, restore_idle, start_idle
from mlcd.deploy.canary import TrafficBackend
from mlcd.deploy.nginx import Routing
from mlcd.deploy.rollout_record import RolloutRecord
from mlcd.deploy.rollout_spec import RolloutSpec
from mlcd.deploy.shadow_judge import Judge, Mirrored, answers_in
from mlcd.deploy.state import DeployState
from mlcd.errors import DeployError

PROGRESS_SECONDS = 5.0


class ShadowBackend(TrafficBackend, Protocol):
    def colour_port(self, colour: str) -> int: ...


def shadow(
    backend: ShadowBackend,
    image: str,
    expected: Expected,
    spec: RolloutSpec,
    promote_if_agree: float | None,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[RolloutRecord, DeployState | None]:
    """The shadow's record, and the new state when the candidate was promoted."""
    state = backend.read_state()
    if state is None:
        raise DeployError(
            f"nothing is live in {backend.environment} to mirror: deploy a first version without a shadow"
        )
    candidate = start_idle(backend, state, image, expected, timeout)
    stable = state.live.colour
    record = RolloutRecord("shadow", backend.environment, image, candidate.colour, stable)
    settings = spec.shadow
    judge = Judge(backend.colour_port(candidate.colour), settings.timeout_seconds, settings.compared_requests)
    try:
        with judge.serve() as server:
            backend.route(
                Routing(stable, {}, mirror_port=server.port, mirror_timeout=settings.timeout_seconds)
            )
            info(
                f"mirroring {stable}'s requests to {candidate.colour} for {settings.duration_seconds:g} s "
                f"or {settings.requests} requests"
            )
            _wait(judge, settings.duration_seconds, settings.requests, sleep)
            backend.route(Routing(stable, {}))
        record.shadow = _report(judge, backend.colour_port(stable), settings.tolerance)
    except BaseException:
        backend.route(Routing(stable, {}))
        restore_idle(backend, state, candidate.colour, timeout)
        raise
    info(_summary(record.shadow))
    if promote_if_agree is None:
        restore_idle(backend, state, candidate.colour, timeout)
        record.phase, record.reason = "reported", "not promoted: --promote-if-agree was not given"
        backend.save_rollout(record)
        return record, None
    problem = _refusal(record.shadow, promote_if_agree, spec.checks.error_ratio)
    if problem:
        restore_idle(backend, state, candidate.colour, timeout)
        record.phase, record.reason = "rolled back", problem
        backend.save_rollout(record)
        raise DeployError(f"shadow of {image} not promoted: {problem}; {stable} keeps serving")
    new = promote(backend, candidate, state)
    record.phase = "promoted"
    backend.save_rollout(record)
    return record, new


def _wait(judge: Judge, duration: float, requests: int, sleep: Callable[[float], None]) -> None:
    started = last = time.monotonic()
    while time.monotonic() - started < duration and judge.requests < requests:
        sleep(0.2)
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            info(f"  {judge.requests} requests mirrored in {last - started:.0f} s, {judge.errors} failed")


def _ask_stable(port: int, mirrored: Mirrored) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", mirrored.path, mirrored.body, mirrored.headers)
        response = connection.getresponse()
        raw = response.read()
        return json.loads(raw) if response.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


def _agree(candidate: Any, stable: Any, tolerance: float) -> bool:
    if isinstance(candidate, (int, float)) and isinstance(stable, (int, float)):
        return math.isfinite(candidate) and abs(candidate - stable) <= tolerance
    return bool(candidate == stable)


def _report(judge: Judge, stable_port: int, tolerance: float) -> dict[str, Any]:
    compared = agreed = 0
    for mirrored in judge.kept:
        theirs = answers_in(mirrored.path, _ask_stable(stable_port, mirrored))
        ours = answers_in(mirrored.path, mirrored.answer)
        if theirs is None or ours is None or len(theirs) != len(ours):
            continue
        compared += len(ours)
        agreed += sum(_agree(a, b, tolerance) for a, b in zip(ours, theirs, strict=True))
    seconds = sorted(judge.seconds)
    return {
        "mirrored": judge.requests,
        "dropped": judge.dropped,
        "compared_records": compared,
        "agreement": agreed / compared if compared else None,
        "error_ratio": judge.errors / judge.requests if judge.requests else None,
        "latency_p50_seconds": seconds[len(seconds) // 2] if seconds else None,
        "latency_p99_seconds": seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] if seconds else None,
    }


def _summary(report: dict[str, Any]) -> str:
    def shown(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    return (
        f"shadow: {report['mirrored']} requests mirrored ({report['dropped']} dropped by the judge); "
        f"agreement {shown(report['agreement'])} over "
        f"{report['compared_records']} records; candidate error ratio {shown(report['error_ratio'])}, "
        f"p50 {shown(report['latency_p50_seconds'])} s, p99 {shown(report['latency_p99_seconds'])} s"
    )


def _refusal(report: dict[str, Any], promote_if_agree: float, error_ratio: float) -> str:
    if not report["compared_records"]:
        return "no mirrored answer could be compared (no traffic, or the candidate never answered)"
    if report["agreement"] < promote_if_agree:
        return f"agreement {report['agreement']:.4f} is below --promote-if-agree {promote_if_agree:g}"
    if report["error_ratio"] > error_ratio:
        return (
            f"candidate error ratio {report['error_ratio']:.4f} is above checks.error_ratio {error_ratio:g}"
        )
    return ""
