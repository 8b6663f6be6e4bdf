"""The `mlcd` command line: one typer app of command groups. Each command parses its options and
calls one function of the core; nothing here decides policy.

Heavy libraries are imported inside commands so `mlcd --help` stays fast and a serving install
need not carry the training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlcd.blas import pin_blas_kernel
from mlcd.cli import ci, data, deploys, monitoring, registry, results, serving, stages
from mlcd.cli.base import DEBUG_VARIABLE, set_traceback, warn_about_interrupted_work

app = typer.Typer(
    name="mlcd",
    help=(
        "Continuous delivery for ML models. The pipeline stages below are what "
        "`dvc repro` runs (see dvc.yaml); run them by hand only to debug one stage."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
for group in (stages, registry, serving, results, deploys, monitoring):
    group.register(app)
app.add_typer(data.schema_app, name="schema")
app.add_typer(data.data_app, name="data")
app.add_typer(serving.image_app, name="image")
app.add_typer(ci.ci_app, name="ci")
app.add_typer(ci.remote_app, name="remote")
app.add_typer(results.mlflow_app, name="mlflow")
app.add_typer(monitoring.monitor_app, name="monitor")

__all__ = ["DEBUG_VARIABLE", "app", "main"]


@app.callback()
def _options(
    traceback: Annotated[
        bool,
        typer.Option(
            "--traceback",
            metavar="",
            help=f"show the full traceback of an error (or set {DEBUG_VARIABLE}=1).",
        ),
    ] = False,
) -> None:
    set_traceback(traceback)
    warn_about_interrupted_work(Path())


def main() -> None:
    # Before any command imports numpy: OpenBLAS reads its kernel choice once, at load.
    pin_blas_kernel()
    app(prog_name="mlcd")
