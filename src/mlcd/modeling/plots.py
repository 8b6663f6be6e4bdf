"""PNG figures with matplotlib, for people who would rather look than read.

Curve functions take several named series so a report can overlay a base and a
head model on one axis; evaluate draws a single series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Figures are made without pyplot: no GUI backend to pick (CI runners and servers have
# no display), no global figure registry, and about a second less start-up per stage.
from matplotlib.figure import Figure

from mlcd.data.schema import DatasetSchema
from mlcd.files import write_with

Series = Mapping[str, Sequence[Mapping[str, Any]]]
_DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    # No "Software" metadata: the same figure must give the same bytes.
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None}))
    return path


def curve(series: Series, x: str, y: str, title: str, path: Path, diagonal: bool = False) -> Path:
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for label, points in series.items():
        ax.plot([p[x] for p in points], [p[y] for p in points], label=label, linewidth=1.8)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel=x.upper() if len(x) <= 3 else x, ylabel=y.upper() if len(y) <= 3 else y, title=title)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if diagonal else "lower left")
    fig.tight_layout()
    return _save(fig, path)


def confusion(matrices: Mapping[str, np.ndarray], classes: list[str], path: Path) -> Path:
    fig = Figure(figsize=(4.5 * len(matrices), 4))
    axes = fig.subplots(1, len(matrices), squeeze=False)
    for ax, (label, matrix) in zip(axes[0], matrices.items(), strict=True):
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if count > matrix.max() / 2 else "black"
            ax.text(j, i, f"{count:,}", ha="center", va="center", color=colour)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set(xlabel="predicted", ylabel="actual", title=f"confusion matrix: {label}")
    fig.tight_layout()
    return _save(fig, path)


def scatter(series: Series, path: Path) -> Path:
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    low, high = np.inf, -np.inf
    for label, points in series.items():
        actual = np.array([p["actual"] for p in points])
        predicted = np.array([p["predicted"] for p in points])
        ax.scatter(actual, predicted, s=8, alpha=0.6, label=label)
        low, high = (
            min(low, actual.min(), predicted.min()),
            max(high, actual.max(), predicted.max()),
        )
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="actual", ylabel="predicted", title="predicted vs actual")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def numeric_drift(name: str, reference: np.ndarray, current: np.ndarray, verdict: str, path: Path) -> Path:
    """Training values against served ones, as shares over the same bins."""
    reference, current = reference[~np.isnan(reference)], current[~np.isnan(current)]
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins=30)
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    for label, values in (("training", reference), ("served", current)):
        weights = np.full(len(values), 1 / max(len(values), 1))
        ax.hist(
            values,
            bins=list(edges),
            weights=weights,
            alpha=0.55,
            label=f"{label} ({len(values):,})",
        )
    ax.set(xlabel=name, ylabel="share of records", title=f"{name}: {verdict}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def categorical_drift(
    name: str, reference: Mapping[Any, int], current: Mapping[Any, int], verdict: str, path: Path
) -> Path:
    """Each level's share in training and in served traffic, side by side."""
    levels = sorted(set(reference) | set(current), key=lambda level: -reference.get(level, 0))[:30]
    x = np.arange(len(levels))
    fig = Figure(figsize=(max(5, 0.5 * len(levels) + 2), 3.8))
    ax = fig.subplots()
    for offset, (label, counts) in zip(
        (-0.2, 0.2), (("training", reference), ("served", current)), strict=True
    ):
        total = max(sum(counts.values()), 1)
        ax.bar(x + offset, [counts.get(level, 0) / total for level in levels], width=0.4, label=label)
    ax.set_xticks(x, [str(level) for level in levels], rotation=45 if len(levels) > 6 else 0, ha="right")
    ax.set(ylabel="share of records", title=f"{name}: {verdict}")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, ([index[str(v)] for v in y], [index[str(v)] for v in predicted]), 1)
    return matrix


def render_figures(
    schema: DatasetSchema,
    y: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str],
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    out_dir: Path,
    label: str = "model",
) -> list[Path]:
    if schema.task == "regression":
        return [scatter({label: records["predicted_vs_actual"]}, out_dir / "predicted_vs_actual.png")]
    # The confusion matrix PNG counts every test row, not the sample in the JSON.
    figures = [
        confusion(
            {label: confusion_matrix(y, predicted, classes)},
            classes,
            out_dir / "confusion_matrix.png",
        )
    ]
    if "roc" in records:
        positive = schema.positive_class
        figures.append(
            curve(
                {label: records["roc"]},
                "fpr",
                "tpr",
                f"ROC ({positive})",
                out_dir / "roc.png",
                diagonal=True,
            )
        )
        figures.append(
            curve(
                {label: records["precision_recall"]},
                "recall",
                "precision",
                f"precision-recall ({positive})",
                out_dir / "precision_recall.png",
            )
        )
    return figures
