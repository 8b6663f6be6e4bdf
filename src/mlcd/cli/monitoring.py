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
    str,
    typer.Option(
        "--log-dir",
        metavar="DIR",
        help="the directory `mlcd serve --log-dir` wrote to, or the s3:// location of --log-remote.",
    ),
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


def register(app: typer.Typer) -> None:
    app.command()(reports_errors(retrain))


def retrain(
    log_dir: LogDirOption,
    target: Annotated[
        str, typer.Option(metavar="BRANCH", help="the branch the merge request goes into.")
    ] = "main",
    push: Annotated[
        bool,
        typer.Option("--push/--no-push", help="push data, outputs and the branch, and open a merge request."),
    ] = True,
    alerts: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Alertmanager's webhook JSON (GitLab's $TRIGGER_PAYLOAD), named in the MR."
        ),
    ] = None,
    repo: RootOption = Path(),
) -> None:
    """Retrain on the served answers that got labels: the CI job a drift alert triggers runs this.

    Labelled log rows newer than data/retrained.json become a new DVC version of data.source;
    `dvc repro` runs on a new branch retrain/<time>, which is committed, pushed (with `dvc push`)
    and opened as a merge request (GITLAB_TOKEN, CI_SERVER_URL, CI_PROJECT_ID) whose note is the
    usual report plus the drift report. The gate decides as for any merge request.
    """
    from mlcd.ci.retrain import retrain as run

    done = run(repo, log_dir, target, push, alerts)
    console.print(
        f"[green]retrained[/] on {done.appended.rows_added:,} labelled rows -> branch {done.branch}; "
        f"{done.said}"
    )
