"""deploy/rollout.yaml as typed config: a canary's steps, the checks' thresholds, a shadow's budget.

Read once by `mlcd deploy` and `mlcd deploy render`; flags override single keys. Every problem is
reported at once, each naming its dotted key, as params.yaml's are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from mlcd.config import Section, params_yaml_from_text, validated
from mlcd.errors import ConfigError

ROLLOUT_FILE = "deploy/rollout.yaml"


class CanarySpec(Section):
    steps: list[float] = Field(default=[10.0, 25.0, 50.0], min_length=1)
    interval_seconds: float = Field(default=30.0, ge=1.0)
    failure_limit: int = Field(default=2, ge=1)
    min_requests: int = Field(default=50, ge=1)
    inconclusive_deadline_seconds: float = Field(default=600.0, gt=0)

    @field_validator("steps")
    @classmethod
    def _rising_shares(cls, steps: list[float]) -> list[float]:
        if any(not 0 < step < 100 for step in steps):
            raise ValueError(
                f"each step is the candidate's share in percent, above 0 and below 100 (got {steps})"
            )
        if steps != sorted(set(steps)):
            raise ValueError(f"steps must rise, each share once (got {steps})")
        return steps


class Thresholds(Section):
    error_ratio: float = Field(default=0.02, ge=0, le=1)
    latency_p99_ratio: float = Field(default=2.0, ge=1)
    latency_p99_floor_seconds: float = Field(default=0.025, gt=0)
    prediction_mix: float = Field(default=0.1, gt=0, le=1)
    prediction_shift: float = Field(default=0.5, gt=0)


class ShadowSpec(Section):
    duration_seconds: float = Field(default=300.0, gt=0)
    requests: int = Field(default=1000, ge=1)
    timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    compared_requests: int = Field(default=200, ge=1)
    tolerance: float = Field(default=0.0, ge=0)


class RolloutSpec(Section):
    prometheus: str = "http://127.0.0.1:9090"
    canary: CanarySpec = CanarySpec()
    checks: Thresholds = Thresholds()
    shadow: ShadowSpec = ShadowSpec()


def load_rollout(path: Path, overrides: dict[str, Any] | None = None) -> RolloutSpec:
    """The spec at `path` (the defaults when the project has none), with flags' `section.key` values."""
    raw: Any = params_yaml_from_text(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else {}
    if not isinstance(raw, dict):
        return validated(RolloutSpec, raw, str(path))  # refused there, with the file's name
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.rpartition(".")
        target = raw.setdefault(section, {}) if section else raw
        if not isinstance(target, dict):
            raise ConfigError(f"{path}: {section} must be a mapping")
        target[key] = value
    return validated(RolloutSpec, raw, str(path))
