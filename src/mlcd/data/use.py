"""`mlcd data use`: point the pipeline at a team's own table in one step.

What the README's own-data flow does by hand: the file goes under data/external/
(the folder ingest depends on) and is tracked by DVC, a schema is inferred from it,
and params.yaml names both, with a task and an estimator that fit the target.
Everything is checked before anything is written, so a refusal changes nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlcd.config import EXTERNAL_DATA, REGRESSORS, Params, ProjectPaths, Task
from mlcd.data.schema import MAX_CLASSES, DatasetSchema, TargetSpec, infer_schema, schema_to_yaml
from mlcd.data.sources import read_source_file
from mlcd.errors import ConfigError
from mlcd.files import write_bytes
from mlcd.params_edit import checked_edit

_DEFAULT_CLASSIFIER = "logistic_regression"
_DEFAULT_REGRESSOR = "ridge"


@dataclass(frozen=True)
class DataSwitch:
    source: str  # as params.yaml names it, relative to the project root
    schema: str
    task: Task
    estimator: str
    rows: int
    features: int
    positive: str | None


def _source_in_project(file: Path, paths: ProjectPaths) -> Path:
    """The file under data/external/: itself if already there, else where a copy will go."""
    external = paths.root / EXTERNAL_DATA
    resolved = file.resolve()
    if resolved.is_relative_to(external.resolve()):
        return resolved
    return external / file.name


def _with_task(schema: DatasetSchema, task: Task | None) -> DatasetSchema:
    if task is None or task == schema.task:
        return schema
    if task == "regression":
        return schema.model_copy(update={"target": TargetSpec(name=schema.target.name)})
    raise ConfigError(
        f"--task classification, but target {schema.target.name!r} has more than {MAX_CLASSES} distinct "
        "numeric values: it looks like a regression target; leave --task out or pick another column"
    )


def _estimator(params: Params, task: Task) -> str:
    current = params.train.estimator
    if (current in REGRESSORS) == (task == "regression"):
        return current
    return _DEFAULT_REGRESSOR if task == "regression" else _DEFAULT_CLASSIFIER


def use_data(
    file: Path,
    target: str,
    params: Params,
    paths: ProjectPaths,
    task: Task | None = None,
    force: bool = False,
) -> DataSwitch:
    if not file.is_file():
        raise ConfigError(f"{file} is not a file: name the .csv, .csv.gz or .parquet table to use")
    source = _source_in_project(file, paths)
    if source != file.resolve() and source.exists() and not force:
        raise ConfigError(
            f"{source} already exists and is another file: rename yours, or pass --force to replace it"
        )
    frame = read_source_file(file, params.data.delimiter, params.data.encoding)
    schema = _with_task(infer_schema(frame, target), task)
    schema_file = paths.root / "data" / "schemas" / f"{source.name.split('.')[0]}.yaml"
    if schema_file.exists() and not force:
        raise ConfigError(
            f"{schema_file} already exists: pass --force to replace it, or rename the data file"
        )
    relative_source = source.relative_to(paths.root).as_posix()
    relative_schema = schema_file.relative_to(paths.root).as_posix()
    estimator = _estimator(params, schema.task)
    new_params = checked_edit(
        paths.params,
        {
            "data.source": relative_source,
            "data.schema": relative_schema,
            "train.task": schema.task,
            "train.estimator": estimator,
        },
    )
    _copy_and_track(file, source, paths.root)
    write_bytes(schema_file, schema_to_yaml(schema).encode("utf-8"))
    write_bytes(paths.params, new_params.encode("utf-8"))
    return DataSwitch(
        relative_source,
        relative_schema,
        schema.task,
        estimator,
        len(frame),
        len(schema.features),
        schema.positive_class,
    )


def _copy_and_track(file: Path, source: Path, root: Path) -> None:
    """Copy the file into data/external/ and `dvc add` it; if DVC refuses, put back what was there."""
    if source == file.resolve():
        _dvc_add(root, source)
        return
    backup = source.with_name(source.name + ".mlcd-backup")
    if source.exists():  # --force over a file of the same name
        source.replace(backup)
    shutil.copy2(file, source)
    try:
        _dvc_add(root, source)
    except BaseException:
        source.unlink(missing_ok=True)
        if backup.exists():
            backup.replace(source)
        raise
    backup.unlink(missing_ok=True)


def _dvc_add(root: Path, source: Path) -> None:
    """Track the file with DVC (a .dvc file beside it, the data in the cache and .gitignore'd)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            repo.scm_context.quiet = True  # our own summary says what to commit
            repo.add(str(source))
    except DvcException as exc:
        raise ConfigError(f"`dvc add {source.relative_to(root)}` failed: {exc}") from None
