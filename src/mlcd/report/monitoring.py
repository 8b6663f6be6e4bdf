"""`mlcd monitor report`: what the served model answered, against the training split it was
packaged with. The statistics are the server's own (monitor/drift.py scores both); the rows are
every logged record of the bundle's model since a time, not only the server's last window.

Writes a Markdown summary (suitable for a merge-request note) and a PNG per drifted feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlcd.bundle import PREDICTION, Bundle, Reference, open_bundle
from mlcd.errors import ConfigError, MonitorError
from mlcd.files import write_bytes
from mlcd.modeling import plots
from mlcd.monitor import drift, estimation
from mlcd.serve.feedback import LivePerformance, performance_floors
from mlcd.serve.log_reader import Logged, labelled, read_predictions
from mlcd.serve.log_shipping import local_logs

SUMMARY_FILE = "monitor.md"
_AGO = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class MonitorReport:
    summary: Path
    figures: list[Path]
    rows: int
    scores: dict[str, tuple[str, float, bool]]  # (method, score, drifted) per feature and PREDICTION
    drifted: list[str]
    performance: dict[str, float]
    estimated: dict[str, float]  # binary classifiers with a calibration: CBPE over every row


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`24h`, `30m`, `7d` ago, or an ISO-8601 time (UTC unless it names a zone)."""
    now = now or datetime.now(UTC)
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: give a time such as 2026-12-01T08:00 or an age such as 24h"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def monitor_report(
    bundle_path: Path, log_location: str | Path, out: Path, since: datetime | None = None
) -> MonitorReport:
    """Over the logs in a directory, or under an s3:// location (`mlcd serve --log-remote`)."""
    with local_logs(log_location) as log_dir:
        return _report(bundle_path, log_dir, out, since)


def _report(bundle_path: Path, log_dir: Path, out: Path, since: datetime | None) -> MonitorReport:
    bundle = open_bundle(bundle_path)
    if bundle.reference is None:
        raise MonitorError(
            f"{bundle_path} has no reference.json (packaged before bundles held one); "
            "run `dvc repro` to package it again"
        )
    logged = read_predictions(log_dir, bundle.model_hash, since)
    if logged.rows.empty:
        raise MonitorError(
            f"{log_dir} holds no answers of model {bundle.model_hash[:12]}"
            + (f" since {since:%Y-%m-%d %H:%M} UTC" if since else "")
            + f" ({logged.other_models:,} rows of other models); pass the bundle that served them"
        )
    reference, rows = bundle.reference, logged.rows
    numeric = [name for name in reference.numeric if f"input.{name}" in rows]
    texts = {
        name: rows[f"input.{name}"].astype(str).tolist()
        for name in reference.categorical
        if f"input.{name}" in rows
    }
    numbers = rows[[f"input.{name}" for name in numeric]].to_numpy(np.float64)
    answers = _answers(rows, bundle).tolist()
    found = (
        drift.scores(reference, numbers, numeric, texts, answers) if len(rows) >= reference.min_window else {}
    )
    out.mkdir(parents=True, exist_ok=True)
    figures = [
        _figure(
            reference,
            name,
            verdict,
            numbers[:, numeric.index(name)] if name in numeric else None,
            texts,
            answers,
            out,
        )
        for name, verdict in found.items()
        if verdict[2]
    ]
    performance = _performance(bundle, labelled(log_dir, rows))
    estimated = _estimated(bundle, rows)
    summary = out / SUMMARY_FILE
    text = render(bundle, logged, found, performance, estimated, figures, since)
    write_bytes(summary, text.encode("utf-8"))
    drifted = [name for name, verdict in found.items() if verdict[2]]
    return MonitorReport(summary, figures, len(rows), found, drifted, performance[0], estimated)


def _answers(rows: Any, bundle: Bundle) -> np.ndarray:
    column = "output.value" if not bundle.classes else "output.label"
    answers: np.ndarray = rows[column].to_numpy()
    return answers


def _performance(bundle: Bundle, joined: Any) -> tuple[dict[str, float], int, dict[str, float]]:
    """Live metrics on the labelled rows, how many, and the gate's floor for each."""
    if joined.empty:
        return {}, 0, {}
    classes = bundle.classes or None
    truth = joined["value" if classes is None else "label"].tolist()
    pairs = list(zip(_answers(joined, bundle).tolist(), truth, strict=True))
    metrics = LivePerformance(classes, bundle.schema.positive_class).measure(pairs)
    return (
        metrics,
        len(pairs),
        performance_floors(bundle.manifest.metrics, bundle.manifest.params.get("gate")),
    )


def _estimated(bundle: Bundle, rows: Any) -> dict[str, float]:
    """The server's estimate (monitor/estimation.py) over every logged answer, not only a window."""
    calibration = bundle.reference.calibration if bundle.reference is not None else None
    if calibration is None or f"output.probability.{calibration.positive}" not in rows:
        return {}
    probabilities = rows[f"output.probability.{calibration.positive}"].to_numpy(np.float64)
    answered_positive = _answers(rows, bundle) == calibration.positive
    return estimation.estimate(estimation.calibrated(calibration, probabilities), answered_positive)


def _estimate_lines(estimated: dict[str, float], rows: int, floors: dict[str, float]) -> list[str]:
    if not estimated:
        return []
    lines = [
        "",
        "### Estimated performance, before labels",
        "",
        f"Expected from the calibrated probabilities of the {rows:,} answers (CBPE); it assumes the "
        "inputs moved but not their relation to the target, which only labels can show.",
        "",
        "| metric | estimate | gate's floor |",
        "|---|---:|---:|",
    ]
    return lines + [_metric_row(metric, value, floors.get(metric)) for metric, value in estimated.items()]


def _metric_row(metric: str, value: float, floor: float | None) -> str:
    """A table row of a metric against the gate's floor, marked when below it."""
    shown = f"**{value:.4f}** (below)" if floor is not None and value < floor else f"{value:.4f}"
    return f"| {metric} | {shown} | {'' if floor is None else f'{floor:.4f}'} |"


def _figure(
    reference: Reference,
    name: str,
    verdict: tuple[str, float, bool],
    values: np.ndarray | None,
    texts: dict[str, list[str]],
    answers: list[Any],
    out: Path,
) -> Path:
    said = f"{verdict[0]} {verdict[1]:.3g} (drifted)"
    path = out / f"drift-{_file_name(name)}.png"
    if values is not None:
        sample = np.asarray(reference.numeric[name].sample, dtype=np.float64)
        return plots.numeric_drift(name, sample, values, said, path)
    if name in texts:
        return plots.categorical_drift(
            name, reference.categorical[name], drift.counts(texts[name]), said, path
        )
    if reference.predicted_labels is not None:
        return plots.categorical_drift(name, reference.predicted_labels, drift.counts(answers), said, path)
    predicted = np.asarray(reference.predicted_values or [], dtype=np.float64)
    return plots.numeric_drift(name, predicted, np.asarray(answers, dtype=np.float64), said, path)


def _file_name(feature: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", feature).strip("_") or "feature"


def render(
    bundle: Bundle,
    logged: Logged,
    found: dict[str, tuple[str, float, bool]],
    performance: tuple[dict[str, float], int, dict[str, float]],
    estimated: dict[str, float],
    figures: list[Path],
    since: datetime | None,
) -> str:
    reference, rows = bundle.reference, logged.rows
    assert reference is not None
    first, last = rows["time"].min(), rows["time"].max()
    lines = [
        "## Served traffic against the training split",
        "",
        f"Model `{bundle.model_hash[:12]}`: {len(rows):,} logged records from {logged.files} "
        f"file{'s' if logged.files != 1 else ''}, "
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
        + (f" (since {since:%Y-%m-%d %H:%M} UTC)" if since else "")
        + (f"; {logged.other_models:,} rows of other models left out" if logged.other_models else "")
        + ".",
        "",
    ]
    features = {name: v for name, v in found.items() if name != PREDICTION}
    if not found:
        lines.append(
            f"**No drift verdict:** {len(rows):,} records, fewer than "
            f"monitor.min_window ({reference.min_window:,})."
        )
    else:
        share = sum(v[2] for v in features.values()) / max(len(features), 1)
        dataset = "yes" if share >= reference.drift_share else "no"
        lines += [
            f"**{sum(v[2] for v in features.values())} of {len(features)} features drifted ({share:.0%}); "
            f"dataset drift (at {reference.drift_share:.0%}): {dataset}; "
            f"prediction drift: {'yes' if found[PREDICTION][2] else 'no'}.**",
            "",
            "| feature | test | score | threshold | drifted |",
            "|---|---|---:|---:|:---:|",
        ]
        ordered = sorted(found.items(), key=lambda item: (not item[1][2], item[0] != PREDICTION, item[0]))
        for name, (method, score, drifted) in ordered:
            threshold = reference.tests[name].threshold
            lines.append(
                f"| {name} | {method} | {score:.4g} | {threshold:g} | {'**yes**' if drifted else 'no'} |"
            )
    metrics, labelled_rows, floors = performance
    lines += ["", "### Performance on labelled records", ""]
    if not labelled_rows:
        lines.append("No logged record has a label yet (POST /feedback).")
    else:
        lines.append(f"{labelled_rows:,} labelled records.")
        lines += ["", "| metric | value | gate's floor |", "|---|---:|---:|"]
        lines += [_metric_row(metric, value, floors.get(metric)) for metric, value in metrics.items()]
    lines += _estimate_lines(estimated, len(rows), floors)
    for figure in figures:
        lines += ["", f"![{figure.stem}]({figure.name})"]
    return "\n".join(lines) + "\n"
