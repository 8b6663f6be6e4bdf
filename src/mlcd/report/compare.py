"""Base vs head: metric, param, data and model rows, and the gate's verdict on them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mlcd.config import HIGHER_IS_BETTER, GateParams, flatten
from mlcd.report.sides import PROCESSED, Side


@dataclass(frozen=True)
class MetricRow:
    name: str
    base: float | None
    head: float | None

    @property
    def change(self) -> float | None:
        return None if self.base is None or self.head is None else self.head - self.base

    @property
    def relative(self) -> float | None:
        change = self.change
        return None if change is None or not self.base else change / abs(self.base)

    @property
    def worsening(self) -> float | None:
        """How much worse head is than base, in the metric's units (negative: better)."""
        change = self.change
        if change is None:
            return None
        return -change if HIGHER_IS_BETTER.get(self.name, True) else change


@dataclass(frozen=True)
class Rule:
    name: str
    limit: str
    observed: str
    passed: bool | None  # None: could not be checked (missing on one side)
    on_metric: bool = False  # a test-set metric's rule, not latency or size


def metric_rows(base: Side, head: Side) -> list[MetricRow]:
    names = list(head.metrics) + [n for n in base.metrics if n not in head.metrics]
    return [MetricRow(n, base.metrics.get(n), head.metrics.get(n)) for n in names]


def param_changes(base: Side, head: Side) -> list[tuple[str, Any, Any]]:
    """(key, base value, head value) for every param that differs; files are merged, keys dotted."""
    old, new = flatten(base.params), flatten(head.params)
    missing = object()
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            changes.append((key, None if before is missing else before, None if after is missing else after))
    return changes


def data_rows(base: Side, head: Side) -> list[tuple[str, Any, Any]]:
    rows: list[tuple[str, Any, Any]] = [
        ("rows", base.profile.get("rows"), head.profile.get("rows")),
        ("features", base.profile.get("features"), head.profile.get("features")),
        ("missing cells", base.profile.get("missing_cells"), head.profile.get("missing_cells")),
        ("raw data sha256", _short(base.profile.get("sha256")), _short(head.profile.get("sha256"))),
    ]
    for path in PROCESSED:
        rows.append((f"{path} md5", _short(base.data_hashes.get(path)), _short(head.data_hashes.get(path))))
    balance_keys = list((head.profile.get("class_balance") or {}) | (base.profile.get("class_balance") or {}))
    for key in balance_keys:
        rows.append(
            (
                f"class share: {key}",
                (base.profile.get("class_balance") or {}).get(key),
                (head.profile.get("class_balance") or {}).get(key),
            )
        )
    return rows


def _short(digest: str | None) -> str | None:
    return digest[:12] if digest else None


def _ratio(base: float | None, head: float | None) -> float | None:
    return None if not base or head is None else head / base - 1


def format_number(value: float, spec: str) -> str:
    """`value` formatted with `spec`, with more decimals where `spec` would round a change to zero.

    A drop of 0.00003 reads "-0.000030", not "+0.0000" beside a "worse" mark.
    """
    if value == 0:
        return f"{0.0:{spec}}"  # never "-0.0000"
    text = f"{value:{spec}}"
    if not math.isfinite(value) or any(digit in text for digit in "123456789"):
        return text
    fixed = re.fullmatch(r"(\+?)\.(\d+)([f%])", spec)
    if fixed is None:
        return text
    sign, _, kind = fixed.groups()
    scaled = abs(value) * (100 if kind == "%" else 1)
    decimals = 1 - math.floor(math.log10(scaled))
    if decimals > 12:  # float noise, not a change
        return f"{0.0:{spec}}"
    return f"{value:{sign}.{decimals}{kind}}"


def _rule(
    name: str, limit: str, value: float | None, spec: str, allowed: float, on_metric: bool = False
) -> Rule:
    """A gate rule: `value` (shown with format `spec`) must be at most `allowed`; None when unmeasured."""
    if value is None:
        return Rule(name, limit, "not measured on both sides", None, on_metric)
    return Rule(name, limit, format_number(value, spec), value <= allowed, on_metric)


def gate(rows: list[MetricRow], base: Side, head: Side, params: GateParams) -> list[Rule]:
    rules = []
    by_name = {row.name: row for row in rows}
    limits, note = params.metric_limits(set(by_name))
    for name, limit in limits.items():
        row = by_name.get(name)
        worse = row.worsening if row else None
        word = "rise" if not HIGHER_IS_BETTER[name] else "drop"
        rule = _rule(f"{name} {word} at most {limit:g}{note}", f"{limit:g}", worse, "+.4f", limit, True)
        rules.append(rule)
    for label, limit, ratio in (
        ("single-row latency", params.max_latency_increase, _ratio(base.latency_ms, head.latency_ms)),
        ("bundle size", params.max_size_increase, _ratio(base.bundle_bytes, head.bundle_bytes)),
    ):
        rules.append(_rule(f"{label} up at most {limit:.0%}", f"{limit:.0%}", ratio, "+.1%", limit))
    return rules
