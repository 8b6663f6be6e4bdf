"""Canary: a growing share of live requests to the candidate, judged on Prometheus at every step.

Each interval the checks (promql.py) are read for the candidate against the stable colour. A pass
moves to the next step's share; a failure counts, and at the spec's failure limit the candidate
gets no more requests and the idle colour is put back to the rollback target; an inconclusive
check (too few candidate requests) waits, up to a deadline, and never counts as a failure. After
the last step the candidate takes all traffic and the stable colour stays for `mlcd rollback`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from mlcd.console import info, warn
from mlcd.deploy import promql
from mlcd.deploy.analysis import Prometheus, analyse
from mlcd.deploy.bluegreen import Backend, Expected, promote, restore_idle, start_idle
from mlcd.deploy.nginx import Routing
from mlcd.deploy.rollout_record import Phase, RolloutRecord, StepRecord
from mlcd.deploy.rollout_spec import RolloutSpec
from mlcd.deploy.state import DeployState, now
from mlcd.errors import DeployError, MlcdError


class TrafficBackend(Backend, Protocol):
    """A backend that can split and mirror traffic (podman's nginx) and keeps the rollout's record."""

    def route(self, routing: Routing) -> None: ...
    def save_rollout(self, record: RolloutRecord) -> None: ...


def versions_of(environment: str, candidate: str, stable: str, window_seconds: float) -> promql.Versions:
    """The podman backend's series: Prometheus labels each colour's target (prometheus-targets.json)."""
    return promql.Versions(
        candidate=f'environment="{environment}",colour="{candidate}"',
        stable=f'environment="{environment}",colour="{stable}"',
        window=f"{max(1, round(window_seconds))}s",
    )


def canary(
    backend: TrafficBackend,
    image: str,
    expected: Expected,
    spec: RolloutSpec,
    prometheus: Prometheus,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployState:
    state = backend.read_state()
    if state is None:
        info("nothing is live yet: no stable version to compare with, so this first deploy switches at once")
        return promote(backend, start_idle(backend, None, image, expected, timeout), None)
    prometheus.query("vector(1)")  # unreachable or wrong: said before anything starts
    candidate = start_idle(backend, state, image, expected, timeout)
    stable = state.live.colour
    record = RolloutRecord("canary", backend.environment, image, candidate.colour, stable)
    canary_spec = spec.canary
    versions = versions_of(backend.environment, candidate.colour, stable, canary_spec.interval_seconds)
    checks = promql.checks(versions, spec.checks, classifier=bool(expected.classes))
    requests = promql.requests(versions.candidate, versions.window)
    try:
        for weight in canary_spec.steps:
            record.steps.append(StepRecord(weight, now()))
            backend.save_rollout(record)
            backend.route(Routing(stable, {}, candidate.colour, weight))
            info(f"step {weight:g}%: {candidate.colour} takes {weight:g}% of requests")
            _judge_step(backend, record, spec, prometheus, checks, requests, sleep)
    except _StopRolloutError as exc:
        record.phase, record.reason = exc.phase, exc.reason
    except MlcdError as exc:  # Prometheus gone, nginx refusing a step: no judgement, so no traffic
        record.phase, record.reason = "rolled back", f"the rollout could not go on: {exc}"
    except BaseException:  # Ctrl-C, a bug: the candidate must not keep its share unattended
        record.phase, record.reason = "rolled back", "interrupted"
        _take_back(backend, state, record, timeout)
        raise
    else:
        new = promote(backend, candidate, state)
        record.phase = "promoted"
        backend.save_rollout(record)
        return new
    _take_back(backend, state, record, timeout)
    raise DeployError(
        f"canary of {image} {record.phase}: {record.reason}; {stable} ({state.live.image}) takes all "
        f"traffic again and {candidate.colour} is back to the rollback target"
    )


def _take_back(backend: TrafficBackend, state: DeployState, record: RolloutRecord, timeout: float) -> None:
    """All traffic to the stable colour, the candidate's colour back to the rollback target."""
    backend.route(Routing(state.live.colour, {}))
    restore_idle(backend, state, record.candidate, timeout)
    backend.save_rollout(record)


class _StopRolloutError(Exception):
    def __init__(self, phase: Phase, reason: str) -> None:
        super().__init__(reason)
        self.phase, self.reason = phase, reason


def _judge_step(
    backend: TrafficBackend,
    record: RolloutRecord,
    spec: RolloutSpec,
    prometheus: Prometheus,
    checks: list[promql.Check],
    requests: str,
    sleep: Callable[[float], None],
) -> None:
    """Return when the step passes; raise _StopRolloutError at the failure limit or the deadline."""
    started = time.monotonic()
    canary_spec = spec.canary
    while True:
        sleep(canary_spec.interval_seconds)
        analysis = analyse(prometheus, checks, requests, canary_spec.min_requests)
        record.add(analysis)
        if analysis.verdict == "fail":
            record.failures += 1
        backend.save_rollout(record)
        if analysis.verdict == "pass":
            info(f"  passed: {'; '.join(r.describe() for r in analysis.results)}")
            return
        if analysis.verdict == "fail":
            failed = "; ".join(r.describe() for r in analysis.failed)
            warn(f"  failed check {record.failures} of {canary_spec.failure_limit}: {failed}")
            if record.failures >= canary_spec.failure_limit:
                raise _StopRolloutError("rolled back", f"{record.failures} failed checks, the last: {failed}")
            continue
        waited = time.monotonic() - started
        info(
            f"  inconclusive: {analysis.candidate_requests:.0f} candidate requests in "
            f"{canary_spec.interval_seconds:g} s, {canary_spec.min_requests} needed; waiting "
            f"({waited:.0f} of {canary_spec.inconclusive_deadline_seconds:g} s)"
        )
        if waited >= canary_spec.inconclusive_deadline_seconds:
            raise _StopRolloutError(
                "no verdict",
                f"fewer than {canary_spec.min_requests} candidate requests per "
                f"{canary_spec.interval_seconds:g} s for {waited:.0f} s",
            )
