"""The closed loop's commands: `mlcd monitor report` over what the server logged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlcd.cli.base import BundleOption, RootOption, bundle_in, reports_errors
from mlcd.console import console

monitor_app = typer.Typer(
    help="What the served model answered, against its training split.", no_args_is_help=True
)

LogDirOption = Annotated[
    Path, typer.Option("--log-dir", metavar="DIR", help="the directory `mlcd serve --log-dir` wrote to.")
]


@monitor_app.command("report")
@reports_errors
def report(
    log_dir: LogDirOption,
    since: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="only records since then: 2026-12-01T08:00 (UTC) or an age, 24h."),
    ] = None,
    out: Annotated[Path, typer.Option(metavar="DIR", help="where monitor.md and the figures go.")] = Path(
        "monitor-report"
    ),
    bundle: BundleOption = None,
    repo: RootOption = Path(),
) -> None:
    """Drift per feature and live performance over the logged traffic of the bundle's model.

    The same tests and thresholds as the server's gauges (the bundle's reference.json), over every
    logged record since TIME; a Markdown summary for a merge-request note and a PNG per drifted
    feature (training against served).
    """
    from mlcd.report.monitoring import monitor_report, parse_since

    made = monitor_report(bundle_in(repo, bundle), log_dir, out, parse_since(since) if since else None)
    drifted = ", ".join(made.drifted) or "none"
    console.print(f"[green]reported[/] {made.rows:,} records -> {made.summary}; drifted: {drifted}")
