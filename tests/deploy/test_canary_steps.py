"""The canary's decisions, step by step, against a recorded backend and scripted check values: what
each verdict does (step up, count, wait, roll back), without podman or Prometheus (those are in
test_progressive.py, which shows the same loop for real)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from mlcd.bundle import Examples
from mlcd.deploy.bluegreen import Expected
from mlcd.deploy.canary import canary
from mlcd.deploy.nginx import Routing
from mlcd.deploy.rollout_record import RolloutRecord
from mlcd.deploy.rollout_spec import RolloutSpec
from mlcd.deploy.state import DeployState, Slot
from mlcd.errors import DeployError

EXAMPLES = Examples(records=[{"x": 1.0}], labels=["a"], probabilities=[[1.0, 0.0]], predictions=None)
EXPECTED = Expected("hash-new", EXAMPLES, ["a", "b"])


@dataclass
class RecordedBackend:
    environment: str = "test"
    state: DeployState | None = None
    calls: list[str] = field(default_factory=list)
    record: RolloutRecord | None = None

    def read_state(self) -> DeployState | None:
        return self.state

    def start(self, colour: str, image: str) -> None:
        self.calls.append(f"start {colour} {image}")

    def wait_ready(self, colour: str, timeout: float) -> str:
        return "hash-new" if self.calls[-1].endswith("new") else "hash-old"

    def predict(self, colour: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"labels": ["a"], "probabilities": [{"a": 1.0, "b": 0.0}]}

    def switch(self, state: DeployState) -> None:
        self.calls.append(f"switch {state.live.colour}")
        self.state = state

    def stop(self, colour: str) -> None:
        self.calls.append(f"stop {colour}")

    def route(self, routing: Routing) -> None:
        self.calls.append(f"route {routing.candidate or '-'} {routing.weight:g}")

    def save_rollout(self, record: RolloutRecord) -> None:
        self.record = record


class ScriptedPrometheus:
    """Answers the candidate's request count and every check's value from a script, one analysis
    per entry: (requests, value of every check)."""

    def __init__(self, script: list[tuple[float, float]]) -> None:
        self.script = script
        self.analysis = -1

    def query(self, expr: str) -> list[dict[str, Any]]:
        return [{"metric": {}, "value": [0, "1"]}]

    def scalar(self, expr: str) -> float | None:
        if expr.startswith("sum(increase(mlcd_requests_total"):  # each analysis starts here
            self.analysis += 1
            if self.analysis >= len(self.script):
                raise DeployError("cannot query Prometheus at http://127.0.0.1:9: connection refused")
            return self.script[self.analysis][0]
        return self.script[self.analysis][1]

    def shown(self, expr: str) -> str:
        return "-"


def _live() -> DeployState:
    slot = Slot("blue", "img:old", "hash-old", "t0")
    return DeployState("test", slot, None, "t0")


def _spec(**canary: Any) -> RolloutSpec:
    return RolloutSpec.model_validate({"canary": {"steps": [10, 50], "interval_seconds": 1, **canary}})


def _run(backend: RecordedBackend, script: list[tuple[float, float]], **spec: Any) -> DeployState:
    """The canary with the scripted checks; each interval's wait is 10 ms."""
    prometheus = ScriptedPrometheus(script)
    return canary(backend, "img:new", EXPECTED, _spec(**spec), prometheus, sleep=lambda _: time.sleep(0.01))  # type: ignore[arg-type]


def test_passing_steps_go_up_and_the_candidate_takes_all_traffic():
    backend = RecordedBackend(state=_live())
    state = _run(backend, [(100, 0.0), (100, 0.0)])
    assert state.live.colour == "green" and state.previous and state.previous.colour == "blue"
    assert backend.calls == ["start green img:new", "route green 10", "route green 50", "switch green"]
    assert backend.record and backend.record.phase == "promoted" and backend.record.failures == 0


def test_one_failure_below_the_limit_stays_on_the_step_then_goes_on():
    backend = RecordedBackend(state=_live())
    _run(backend, [(100, 5.0), (100, 0.0), (100, 0.0)], failure_limit=2)
    assert backend.record and backend.record.failures == 1 and backend.record.phase == "promoted"
    assert [len(step.analyses) for step in backend.record.steps] == [2, 1]


def test_the_failure_limit_rolls_back_and_names_the_check():
    backend = RecordedBackend(state=_live())
    with pytest.raises(DeployError, match=r"rolled back: 2 failed checks, the last: error_ratio 5 > 0.02"):
        _run(backend, [(100, 5.0), (100, 5.0)], failure_limit=2)
    # no more requests to green, and green is stopped (no previous release to put back)
    assert backend.calls[-2:] == ["route - 0", "stop green"]
    assert backend.state and backend.state.live.colour == "blue"
    assert backend.record and backend.record.phase == "rolled back"


def test_too_few_requests_wait_without_failing_until_the_deadline():
    backend = RecordedBackend(state=_live())
    with pytest.raises(DeployError, match="no verdict: fewer than 50 candidate requests"):
        _run(backend, [(3, 9.0)] * 100, inconclusive_deadline_seconds=0.1)
    assert backend.record and backend.record.failures == 0 and backend.record.phase == "no verdict"
    verdicts = {a["verdict"] for step in backend.record.steps for a in step.analyses}
    assert verdicts == {"inconclusive"}  # a bad value below the minimum never counted


def test_the_first_deploy_has_nothing_to_compare_and_switches_at_once():
    backend = RecordedBackend()
    state = _run(backend, [])
    assert state.live.colour == "blue" and backend.calls == ["start blue img:new", "switch blue"]


def test_checks_that_cannot_be_read_mid_rollout_roll_back():
    backend = RecordedBackend(state=_live())
    with pytest.raises(
        DeployError, match="rolled back: the rollout could not go on: cannot query Prometheus"
    ):
        _run(backend, [(100, 0.0)])  # step 10 % passes, then Prometheus is gone
    assert backend.calls[-2:] == ["route - 0", "stop green"]
    assert backend.record and backend.record.phase == "rolled back"
