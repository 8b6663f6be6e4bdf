"""What a progressive rollout did, step by step: kept beside state.json as rollout.json, shown by
`mlcd deploy status`, and exported to Prometheus (text format, served by the environment's nginx)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlcd.deploy.analysis import Analysis
from mlcd.deploy.state import now

Phase = Literal["progressing", "promoted", "rolled back", "no verdict", "reported"]
PHASES: tuple[Phase, ...] = ("progressing", "promoted", "rolled back", "no verdict", "reported")
VERDICT_CODES = {"pass": 1, "inconclusive": 0, "fail": -1}


@dataclass
class StepRecord:
    weight: float
    started_at: str
    analyses: list[dict[str, Any]] = field(default_factory=list)  # one per interval: checks and verdict


@dataclass
class RolloutRecord:
    strategy: str
    environment: str
    image: str
    candidate: str  # colour
    stable: str
    started_at: str = field(default_factory=now)
    phase: Phase = "progressing"
    reason: str = ""
    failures: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    shadow: dict[str, Any] = field(default_factory=dict)  # a shadow's report: agreement, errors, latency

    @property
    def weight(self) -> float:
        if self.phase == "promoted":
            return 100.0
        if self.phase != "progressing" or not self.steps:
            return 0.0
        return self.steps[-1].weight

    def add(self, analysis: Analysis) -> None:
        self.steps[-1].analyses.append(
            {
                "at": now(),
                "verdict": analysis.verdict,
                "candidate_requests": analysis.candidate_requests,
                "checks": [r.to_dict() for r in analysis.results],
            }
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RolloutRecord:
        data: dict[str, Any] = json.loads(text)
        steps = [StepRecord(**step) for step in data.pop("steps")]
        return cls(**data, steps=steps)

    def metrics(self) -> str:
        """Gauges in Prometheus' text format; the scrape target adds the environment label."""
        lines = [
            "# TYPE mlcd_rollout_weight gauge",
            f'mlcd_rollout_weight{{strategy="{self.strategy}",candidate="{self.candidate}"}} {self.weight:g}',
            "# TYPE mlcd_rollout_failed_checks gauge",
            f"mlcd_rollout_failed_checks {self.failures}",
            "# TYPE mlcd_rollout_phase gauge",
            *(f'mlcd_rollout_phase{{phase="{p}"}} {int(p == self.phase)}' for p in PHASES),
        ]
        last = next((s.analyses[-1] for s in reversed(self.steps) if s.analyses), None)
        if last is not None:
            lines += ["# TYPE mlcd_rollout_check_value gauge", "# TYPE mlcd_rollout_check_limit gauge"]
            lines += ["# TYPE mlcd_rollout_check_verdict gauge"]
            for check in last["checks"]:
                name = check["name"]
                if check["value"] is not None:
                    lines.append(f'mlcd_rollout_check_value{{check="{name}"}} {check["value"]:g}')
                lines.append(f'mlcd_rollout_check_limit{{check="{name}"}} {check["limit"]:g}')
                lines.append(
                    f'mlcd_rollout_check_verdict{{check="{name}"}} {VERDICT_CODES[check["verdict"]]}'
                )
        for key in ("agreement", "error_ratio", "latency_p99_seconds"):
            if self.shadow.get(key) is not None:
                lines += [f"# TYPE mlcd_shadow_{key} gauge", f"mlcd_shadow_{key} {self.shadow[key]:g}"]
        return "\n".join(lines) + "\n"

    def describe(self) -> list[str]:
        """Lines for people: each step's analyses, then the outcome."""
        lines = [
            f"{self.strategy} of {self.image} in {self.candidate} (stable {self.stable}), {self.started_at}"
        ]
        for step in self.steps:
            lines.append(f"  step {step.weight:g}% from {step.started_at}")
            for analysis in step.analyses:
                lines.append(
                    f"    {analysis['at']} {analysis['verdict']} "
                    f"({analysis['candidate_requests']:.0f} candidate requests)"
                )
                for check in analysis["checks"]:
                    value = "-" if check["value"] is None else f"{check['value']:.4g}"
                    lines.append(
                        f"      {check['name']}: {check['verdict']} {value} (limit {check['limit']:g}; "
                        f"candidate {check['candidate']}, stable {check['stable']})"
                    )
        for key, value in self.shadow.items():
            lines.append(f"  {key}: {value}")
        lines.append(f"  {self.phase}{': ' + self.reason if self.reason else ''}")
        return lines
