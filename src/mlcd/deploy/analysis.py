"""Reading a rollout's checks from Prometheus: each check's value against its limit, with a verdict.

A check is inconclusive (never a failure) while the candidate has answered fewer than the minimum
number of prediction requests in the window, or while Prometheus has no value for it yet.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlcd.deploy import promql
from mlcd.errors import DeployError
from mlcd.http_client import http_json

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: Verdict
    value: float | None
    limit: float
    candidate: str  # the candidate's own figure, for people (a ratio, a p99, class shares)
    stable: str

    def describe(self) -> str:
        value = "no value" if self.value is None else f"{self.value:.4g}"
        sign = {"pass": "<=", "fail": ">", "inconclusive": "vs"}[self.verdict]
        return f"{self.name} {value} {sign} {self.limit:g} (candidate {self.candidate}, stable {self.stable})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Analysis:
    candidate_requests: float
    results: list[CheckResult]

    @property
    def verdict(self) -> Verdict:
        verdicts = {r.verdict for r in self.results}
        return "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.verdict == "fail"]


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[dict[str, Any]]:
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            body = http_json(address, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DeployError(f"Prometheus at {self.url} refused a query ({exc.code}): {detail}") from None
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise DeployError(
                f"cannot query Prometheus at {self.url}: {exc}; pass --prometheus with its address"
            ) from None
        if body.get("status") != "success":
            raise DeployError(f"Prometheus at {self.url} failed a query: {body.get('error', body)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The single value of `expr`, or None when Prometheus has none (or not a number)."""
        result = self.query(expr)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) or math.isinf(value) else value

    def shown(self, expr: str) -> str:
        """A figure for people: one value, or label=value pairs for a vector by label."""
        result = self.query(expr)
        if not result:
            return "no data"
        if len(result) == 1 and not result[0]["metric"]:
            return f"{float(result[0]['value'][1]):.4g}"
        pairs = sorted((r["metric"].get("label", "?"), float(r["value"][1])) for r in result)
        return " ".join(f"{label}={value:.2f}" for label, value in pairs)


def analyse(
    prometheus: Prometheus, checks: list[promql.Check], candidate_requests: str, minimum: int
) -> Analysis:
    seen = prometheus.scalar(candidate_requests) or 0.0
    results = []
    for check in checks:
        value = prometheus.scalar(check.query) if seen >= minimum else None
        verdict: Verdict = "inconclusive" if value is None else "pass" if value <= check.limit else "fail"
        candidate = prometheus.shown(check.candidate) if seen >= minimum else f"{seen:.0f} requests"
        stable = prometheus.shown(check.stable) if seen >= minimum else "-"
        results.append(CheckResult(check.name, verdict, value, check.limit, candidate, stable))
    return Analysis(seen, results)
