"""The report as markdown and PNG figures, plus GitLab's metrics-report file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlcd.config import HIGHER_IS_BETTER
from mlcd.report.compare import MetricRow, Rule, format_number
from mlcd.report.sides import Side

MARKER = "<!-- mlcd-report -->"
NONE = "n/a"
SAME = "="


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mark(row: MetricRow) -> str:
    worse = row.worsening
    if worse is None:
        return "❔"
    if abs(worse) < 1e-12:
        return SAME
    return "✅ better" if worse < 0 else "🔻 worse"


def metrics_table(rows: list[MetricRow]) -> list[str]:
    lines = ["| metric | base | head | change | relative | |", "|---|---:|---:|---:|---:|---|"]
    for row in rows:
        arrow = "↑" if HIGHER_IS_BETTER.get(row.name, True) else "↓"
        change = NONE if row.change is None else format_number(row.change, "+.4f")
        relative = NONE if row.relative is None else format_number(row.relative, "+.2%")
        lines.append(
            f"| {row.name} ({arrow} better) | {_num(row.base)} | {_num(row.head)} | {change} | {relative} "
            f"| {_mark(row)} |"
        )
    return lines


def gate_table(rules: list[Rule]) -> list[str]:
    lines = ["| rule | observed | result |", "|---|---:|---|"]
    for rule in rules:
        result = {True: "✅ pass", False: "❌ fail", None: "❔ not checked"}[rule.passed]
        lines.append(f"| {rule.name} | {rule.observed} | {result} |")
    return lines


def _pairs(title: str, header: str, rows: list[tuple[str, Any, Any]]) -> list[str]:
    lines = [f"### {title}", "", f"| {header} | base | head |", "|---|---|---|"]
    for key, before, after in rows:
        changed = " **changed**" if before != after else ""
        lines.append(f"| {key}{changed} | {_num(before)} | {_num(after)} |")
    return lines


def warnings_list(base: Side, head: Side) -> list[str]:
    """The head's data warnings (data.advice), those the base did not have marked new."""
    found = head.profile.get("warnings") or []
    if not found:
        return []
    before = set(base.profile.get("warnings") or [])
    return [
        "#### Data warnings",
        "",
        *[f"- {'**new** ' if w not in before else ''}{w}" for w in found],
        "",
    ]


def search_lines(base: Side, head: Side) -> list[str]:
    """train.search's winner on head (and base's, when it searched too); nothing when head did not search."""
    found = head.search
    if found.get("kind", "none") == "none":
        return []
    line = (
        f"{found['kind']} search over {found['candidates']} candidates ({found['folds']}-fold "
        f"{found['scoring']}): best {_values(found['best'])}, score {_num(found['best_score'])}"
    )
    if base.search.get("best"):
        line += f"; base's best {_values(base.search['best'])}, score {_num(base.search.get('best_score'))}"
    return ["### Hyperparameter search", "", line, ""]


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"`{name}={value}`" for name, value in values.items())


def markdown(
    base: Side,
    head: Side,
    head_label: str,
    how: str,
    rows: list[MetricRow],
    params: list[tuple[str, Any, Any]],
    data: list[tuple[str, Any, Any]],
    rules: list[Rule] | None,
    images: dict[str, str],
    gate_note: str = "",
) -> str:
    base_label = base.rev[:8] if base.rev else "?"
    lines = [MARKER, f"## mlcd model report: {head_label} vs base {base_label}", ""]
    lines.append(f"Base chosen by {how}.")
    if rules is not None:
        failed = [r for r in rules if r.passed is False]
        if failed:
            verdict = f"❌ **gate failed**: {', '.join(r.name for r in failed)}"
        elif not any(r.passed for r in rules if r.on_metric):
            verdict = "❔ **gate checked no metric**: neither side reports a metric a rule names"
        else:
            verdict = "✅ **gate passed**"
        if gate_note:  # thresholds are the base's; say when this change would move them
            verdict += f" ({gate_note})"
        lines += ["", verdict, "", *gate_table(rules)]
    lines += ["", "### Metrics (test set)", "", *metrics_table(rows), ""]
    lines += ["### Parameters", ""]
    if params:
        lines += ["| param | base | head |", "|---|---|---|"]
        lines += [f"| {k} | {NONE if b is None else b} | {NONE if h is None else h} |" for k, b, h in params]
    else:
        lines.append("No parameter changed.")
    lines += ["", *search_lines(base, head)]
    lines += [*_pairs("Data", "", data), "", *warnings_list(base, head)]
    lines += [
        "### Model bundle",
        "",
        "| | base | head |",
        "|---|---:|---:|",
        f"| size (bytes) | {_num(base.bundle_bytes)} | {_num(head.bundle_bytes)} |",
        f"| single-row predict, median ms | {_num(base.latency_ms, 3)} | {_num(head.latency_ms, 3)} |",
        "",
    ]
    if images:
        lines += ["### Plots", ""] + [f"![{name}]({link})" for name, link in images.items()] + [""]
    missing = base.missing + head.missing
    if missing:
        lines += ["### Not compared", ""] + [f"- {m}" for m in missing] + [""]
    return "\n".join(lines)


def figures(base: Side, head: Side, out: Path) -> list[Path]:
    from mlcd.modeling import plots

    made: list[Path] = []
    both = {"base": base.plots, "head": head.plots}
    # Curves are about head's positive class (set_aside_other_positive_class dropped base's if it differs).
    about = f" (positive: {head.positive_class})" if head.positive_class else ""
    curve_specs: list[tuple[str, Callable[[dict[str, Any]], Path]]] = [
        ("roc", lambda s: plots.curve(s, "fpr", "tpr", f"ROC{about}", out / "roc.png", diagonal=True)),
        (
            "precision_recall",
            lambda s: plots.curve(
                s, "recall", "precision", f"precision-recall{about}", out / "precision_recall.png"
            ),
        ),
        ("predicted_vs_actual", lambda s: plots.scatter(s, out / "predicted_vs_actual.png")),
    ]
    for name, draw in curve_specs:
        series = {label: side[name] for label, side in both.items() if name in side}
        if series:
            made.append(draw(series))
    matrices, classes = confusion_matrices(both)
    if matrices:
        made.append(plots.confusion(matrices, classes, out / "confusion_matrix.png"))
    return made


def confusion_matrices(sides: dict[str, dict[str, Any]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Each side's confusion matrix over the classes of both, so one set of ticks fits both panels.

    A head that learned a new class (or lost one) gets an empty row and column on the other side.
    """
    from mlcd.modeling import plots

    records = {label: side["confusion"] for label, side in sides.items() if "confusion" in side}
    values = {r[key] for rows in records.values() for r in rows for key in ("actual", "predicted")}
    try:
        ordered = sorted(values)  # class codes 2 before 10
    except TypeError:  # a side that wrote numbers, another names
        ordered = sorted(values, key=str)
    classes = [str(value) for value in ordered]
    matrices = {
        label: plots.confusion_matrix(
            np.array([r["actual"] for r in rows]), np.array([r["predicted"] for r in rows]), classes
        )
        for label, rows in records.items()
    }
    return matrices, classes
