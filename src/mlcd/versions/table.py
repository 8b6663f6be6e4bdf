"""The human view of `mlcd versions`: a rich table on stdout."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlcd.versions.releases import VersionInfo

KEY_METRICS = ("roc_auc", "accuracy", "f1", "log_loss", "r2", "rmse")
# A terminal's common width: the table is made to fit it (the tag is `<artifact>@<version>` and
# the full date and hash are in --json), and piped output is never squeezed below it.
WIDTH = 100


def print_versions(rows: list[VersionInfo]) -> None:
    console = Console()
    if not console.is_terminal:  # piped or logged: never squeeze the table into 80 columns
        console = Console(width=WIDTH)
    if not rows:
        console.print("no registered versions yet: create one with `mlcd release 0.1.0`")
        return
    names = [m for m in KEY_METRICS if any(m in row.metrics for row in rows)]
    table = Table(show_lines=False, box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    for column in ("version", "stages", "commit", "date", "model hash", *names):
        table.add_column(column, justify="right" if column in names else "left")
    for row in rows:
        stages = ", ".join(row.stages) if row.registered or not row.version else "deregistered"
        table.add_row(
            escape(row.version or "-"),
            escape(stages),
            row.commit[:8],
            row.date[:10],
            row.model_hash[:12] if row.model_hash else "(not stored)",
            *(f"{row.metrics[m]:.4f}" if m in row.metrics else "" for m in names),
        )
    console.print(table)
