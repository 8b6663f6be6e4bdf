"""Results: the merge-request report (`mlcd report`) and the MLflow mirror (`mlcd mlflow ...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mlcd.cli.base import RootOption, reports_errors, say_mirrored
from mlcd.console import console

mlflow_app = typer.Typer(
    help="Mirror results and the registry to MLflow (MLFLOW_TRACKING_URI); git and DVC stay the truth.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command()(reports_errors(report))


def report(
    base: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help="revision to compare with; default: the MR diff base, merge-base with target, HEAD~1.",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(metavar="PATH", help="directory for report.md, PNGs, metrics.txt, report.json.")
    ] = Path("report"),
    gate: Annotated[
        bool, typer.Option("--gate", metavar="", help="exit 1 when a rule in params.yaml's gate breaks.")
    ] = False,
    post_note: Annotated[
        bool,
        typer.Option(
            "--post/--no-post", metavar="", help="post to the merge request when GITLAB_TOKEN is set."
        ),
    ] = True,
    repo: RootOption = Path(),
) -> None:
    """Compare metrics, params, data, model size/latency and plots with a base revision.

    Exit codes: 0 report written (gate passed or not asked for); 1 the gate failed; 2 bad input. A note
    that cannot be posted never changes the exit code: the reason is printed and the report stays in --out.
    """
    from mlcd.report.run import run_report

    result = run_report(repo, base, out, gate, post_note)
    typer.echo(result.markdown)
    if result.gate_failed:
        failed = ", ".join(rule.name for rule in result.rules or [] if rule.passed is False)
        console.print(f"[bold red]gate failed:[/] {failed}")
        raise typer.Exit(1)


ExperimentOption = Annotated[
    str | None,
    typer.Option(metavar="NAME", envvar="MLFLOW_EXPERIMENT_NAME", help="MLflow experiment [mlcd]."),
]
BestEffortOption = Annotated[
    bool,
    typer.Option(
        "--best-effort",
        metavar="",
        help="for CI: without MLFLOW_TRACKING_URI do nothing, and when MLflow fails warn instead of failing.",
    ),
]


@mlflow_app.command("log")
@reports_errors
def mlflow_log(
    rev: Annotated[
        str | None,
        typer.Option(
            metavar="REV", help="a commit, tag or `dvc exp` name; default: the workspace's results."
        ),
    ] = None,
    experiment: ExperimentOption = None,
    best_effort: BestEffortOption = False,
    repo: RootOption = Path(),
) -> None:
    """Log one run of the pipeline's results to MLflow: params, metrics, CV scores, figures, report,
    the ONNX bundle as a model with the bundle's schema as signature, git and dvc.lock hashes as tags.

    Idempotent: the same commit and dvc.lock give the same run, found by its `mlcd.key` tag.
    """
    import time

    from mlcd.tracking.mlflow_bridge import URI_VARIABLE, log_results, mirror

    def log() -> str:
        started = time.monotonic()
        run = log_results(repo, rev, experiment)
        verb = "logged" if run.created else "already logged, unchanged:"
        seconds = time.monotonic() - started
        return f"MLflow: {verb} run {run.run_id} (experiment {run.experiment_id}, {seconds:.1f} s)"

    if best_effort:
        outcome = mirror(log)
        say_mirrored(outcome or (True, f"{URI_VARIABLE} is not set: nothing logged"))
    else:
        console.print(f"[green]{escape(log())}[/]")


@mlflow_app.command("sync")
@reports_errors
def mlflow_sync(best_effort: BestEffortOption = False, repo: RootOption = Path()) -> None:
    """Mirror every registered version (GTO tags) as an MLflow model version and each stage as an alias."""
    from mlcd.tracking.mlflow_bridge import URI_VARIABLE, mirror, sync

    def run() -> str:
        return "MLflow synced: " + "; ".join(sync(repo))

    if best_effort:
        say_mirrored(mirror(run) or (True, f"{URI_VARIABLE} is not set: nothing synced"))
    else:
        console.print(f"[green]{escape(run())}[/]")
