"""Your own data: `mlcd schema infer` and `mlcd data use`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, cast, get_args

import typer

from mlcd.cli.base import RootOption, reports_errors, setup
from mlcd.config import PARAMS_FILE, Params, Task
from mlcd.console import console, warn

schema_app = typer.Typer(help="Create and check dataset schemas (data/schemas/*.yaml).", no_args_is_help=True)
data_app = typer.Typer(help="Point the pipeline at your own data.", no_args_is_help=True)

DataFileArgument = Annotated[
    Path, typer.Argument(metavar="DATA_FILE", help="your table: .csv, .tsv (optionally .gz) or .parquet")
]
TargetOption = Annotated[str, typer.Option(metavar="TEXT", help="name of the column to predict")]
# typer checks a choice given as an Enum: built from config's Task, so the two never part.
TaskChoice = enum.Enum("TaskChoice", {task: task for task in get_args(Task)}, type=str)  # type: ignore[misc]


def _say_positive(positive: str | None) -> None:
    if positive is not None:
        console.print(
            f"positive class {positive!r}: the less frequent of the two, the one precision, "
            "recall, F1 and the curves are about; set target.positive in the schema to change it"
        )


@schema_app.command("infer")
@reports_errors
def schema_infer(
    data_file: DataFileArgument,
    target: TargetOption,
    out: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="where to write the schema YAML [data/schemas/custom.yaml]"),
    ] = None,
    repo: RootOption = Path(),
) -> None:
    """Write a starting schema from a data file: review ranges and classes, then set data.schema.

    A CSV is read with params.yaml's data.delimiter and data.encoding, as ingest will read it.
    """
    from mlcd.data.schema import infer_schema, schema_to_yaml
    from mlcd.data.sources import read_source_file
    from mlcd.files import write_bytes

    data = setup(repo)[0].data if (repo / PARAMS_FILE).is_file() else Params().data
    out = out if out is not None else repo / "data" / "schemas" / "custom.yaml"
    schema = infer_schema(read_source_file(data_file, data.delimiter, data.encoding), target)
    write_bytes(out, schema_to_yaml(schema).encode())
    console.print(f"wrote {out}: {len(schema.features)} features, {schema.task} target {target!r}")
    _say_positive(schema.target.positive)


@data_app.command("use")
@reports_errors
def data_use(
    data_file: DataFileArgument,
    target: TargetOption,
    task: Annotated[
        TaskChoice | None,
        typer.Option(help="default: inferred from the target", show_choices=True),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="replace a data file or schema of the same name")
    ] = False,
    repo: RootOption = Path(),
) -> None:
    """Use DATA_FILE: copy it to data/external/, `dvc add` it, infer its schema, set params.yaml.

    Then review the schema (bounds, classes, positive class, nullable) and run `dvc repro`.
    Nothing is written if any step would fail.
    """
    from mlcd.data.use import use_data

    params, paths = setup(repo)
    switch = use_data(
        data_file, target, params, paths, cast("Task | None", task.value if task else None), force
    )
    for line in (
        f"data.source: {switch.source} ({switch.rows:,} rows, tracked by DVC)",
        f"data.schema: {switch.schema} ({switch.features} features)",
        switch.inference,
        f"train.task: {switch.task}, train.estimator: {switch.estimator}",
    ):
        console.print(line)
    _say_positive(switch.positive)
    for message in switch.warnings:
        warn(message)
    console.print("next: review the schema, then `dvc repro`; commit params.yaml, the schema, the .dvc file")
