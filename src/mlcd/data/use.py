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
from typing import TYPE_CHECKING

from mlcd.config import ESTIMATORS, Params, ProjectPaths, Task
from mlcd.data.advice import data_warnings
from mlcd.data.schema import DatasetSchema, describe_task, infer_schema, schema_to_yaml
from mlcd.data.sources import read_source_file
from mlcd.errors import ConfigError
from mlcd.files import sha256_file, write_bytes
from mlcd.params_edit import checked_edit

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class DataSwitch:
    source: str  # as params.yaml names it, relative to the project root
    schema: str
    task: Task
    estimator: str
    rows: int
    features: int
    positive: str | None
    inference: str  # the task and why, with the flag that overrides it
    warnings: list[str]  # data.advice's, as validate will report them


def _source_in_project(file: Path, paths: ProjectPaths) -> Path:
    """The file under data/external/: itself if already there, else where a copy will go."""
    external = paths.external_data
    resolved = file.resolve()
    if resolved.is_relative_to(external.resolve()):
        # Named from the project root as the rest of params.yaml is, however the file was given.
        return external / resolved.relative_to(external.resolve())
    return external / file.name


def _estimator(params: Params, task: Task) -> str:
    current = params.train.estimator
    return current if current in ESTIMATORS[task] else ESTIMATORS[task][0]


def use_data(
    file: Path,
    target: str,
    params: Params,
    paths: ProjectPaths,
    task: Task | None = None,
    force: bool = False,
) -> DataSwitch:
    if not file.is_file():
        raise ConfigError(
            f"{file} is not a file: name the .csv, .tsv (optionally .gz) or .parquet table to use"
        )
    source = _source_in_project(file, paths)
    if _same_bytes(file, source):
        file = source  # the same table again: nothing to copy and nothing to replace
    if source.resolve() != file.resolve() and source.exists() and not force:
        raise ConfigError(
            f"{source} already exists and is another file: rename yours, or pass --force to replace it"
        )
    frame = read_source_file(file, params.data.delimiter, params.data.encoding)
    if target not in frame.columns:
        raise ConfigError(f"target column {target!r} not in the data; columns: {list(frame)}")
    schema = infer_schema(frame, target, task=task)
    schema_file = paths.root / "data" / "schemas" / f"{source.name.split('.')[0]}.yaml"
    schema_text = schema_to_yaml(schema)
    unchanged = schema_file.is_file() and schema_file.read_text(encoding="utf-8") == schema_text
    if schema_file.exists() and not unchanged and not force:
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
    write_bytes(schema_file, schema_text.encode("utf-8"))
    write_bytes(paths.params, new_params.encode("utf-8"))
    return DataSwitch(
        relative_source,
        relative_schema,
        schema.task,
        estimator,
        len(frame),
        len(schema.features),
        schema.positive_class,
        describe_task(frame[target].dropna(), target, schema.task),
        _warnings(frame, schema, params),
    )


def _warnings(frame: pd.DataFrame, schema: DatasetSchema, params: Params) -> list[str]:
    """The warnings validate will give, early; none if the data is too broken to judge (validate will say)."""
    try:
        return [w.message for w in data_warnings(frame, schema, params.preprocess)]
    except (ValueError, TypeError, KeyError):
        return []


def _same_bytes(file: Path, source: Path) -> bool:
    """Whether the table at `source` already is `file`, byte for byte."""
    if not source.is_file() or source.stat().st_size != file.stat().st_size:
        return False
    return sha256_file(source) == sha256_file(file)


def _copy_and_track(file: Path, source: Path, root: Path) -> None:
    """Copy the file into data/external/ and `dvc add` it; if DVC refuses, put back what was there."""
    if source.resolve() == file.resolve():
        dvc_add(root, source)
        return
    backup = source.with_name(source.name + ".mlcd-backup")
    if source.exists():  # --force over a file of the same name
        source.replace(backup)
    shutil.copy2(file, source)
    try:
        dvc_add(root, source)
    except BaseException:
        source.unlink(missing_ok=True)
        if backup.exists():
            backup.replace(source)
        raise
    backup.unlink(missing_ok=True)


def dvc_add(root: Path, source: Path) -> None:
    """Track the file with DVC (a .dvc file beside it, the data in the cache and .gitignore'd)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            repo.scm_context.quiet = True  # our own summary says what to commit
            repo.add(str(source))
    except DvcException as exc:
        raise ConfigError(f"`dvc add {source.relative_to(root)}` failed: {exc}") from None
