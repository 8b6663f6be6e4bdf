"""New labelled rows appended to the project's data as a new DVC version of its source.

A tracked file (data/external/...) grows in place: a CSV or TSV gets the rows appended (its
existing bytes untouched; a .gz gets a second gzip member, which every reader takes), a Parquet
file is rewritten whole. A built-in source (sklearn:...) has no file to grow, so the first append
writes its rows and the new ones to data/external/<name>.parquet and points data.source at it.
Either way `dvc add` records the new version; ingest's dependency hash in dvc.lock follows.
Rows are written in the source's own types: a class label back to the value it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcd.config import BUILTIN_SOURCES, Params, ProjectPaths
from mlcd.data.labels import series_labels
from mlcd.data.schema import DatasetSchema
from mlcd.data.sources import load_frame
from mlcd.data.use import dvc_add
from mlcd.errors import MonitorError
from mlcd.files import write_with
from mlcd.params_edit import checked_edit

_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")


@dataclass(frozen=True)
class Appended:
    source: str  # data.source after the append, relative to the root
    rows_before: int
    rows_added: int
    switched: bool  # data.source moved from a built-in table to its file


def append_rows(rows: pd.DataFrame, schema: DatasetSchema, params: Params, paths: ProjectPaths) -> Appended:
    """`rows` holds the schema's features and target (as the API speaks them)."""
    missing = [name for name in schema.columns if name not in rows]
    if missing:
        raise MonitorError(f"the labelled rows lack {', '.join(missing)}, which the dataset's schema needs")
    if params.data.source == "synthetic":
        raise MonitorError(
            "data.source is synthetic (generated, not a table): labelled rows need a table to join"
        )
    current = load_frame(params.data, paths)
    new = _as_source(rows, current, schema)
    switched = params.data.source in BUILTIN_SOURCES
    if switched:
        target = paths.external_data / f"{params.data.source.split(':', 1)[1]}.parquet"
        if target.exists():
            raise MonitorError(f"{target} exists already: set data.source to it, or move it aside")
        relative = target.relative_to(paths.root).as_posix()
        params_text = checked_edit(paths.params, {"data.source": relative})
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(pd.concat([current, new], ignore_index=True), target)
        try:
            dvc_add(paths.root, target)
        except BaseException:
            target.unlink(missing_ok=True)  # params.yaml still names the built-in table
            raise
        paths.params.write_text(params_text, encoding="utf-8")
    else:
        target = paths.source(params.data)
        if target.name.lower().endswith(_CSV_SUFFIXES):
            tabs = ".tsv" in target.name.lower()
            new.to_csv(
                target,
                mode="a",
                header=False,
                index=False,
                sep="\t" if tabs else params.data.delimiter,
                encoding=params.data.encoding,
            )
        else:
            _write_parquet(pd.concat([current, new], ignore_index=True), target)
        dvc_add(paths.root, target)
    return Appended(target.relative_to(paths.root).as_posix(), len(current), len(new), switched)


def _write_parquet(frame: pd.DataFrame, target: Path) -> None:
    write_with(target, lambda tmp: frame.to_parquet(tmp, index=False))


def _as_source(rows: pd.DataFrame, current: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """The rows in the source's columns and types; a column the schema does not name stays empty."""
    new = pd.DataFrame(index=rows.index)
    target = schema.target.name
    for name in current.columns:
        if name not in rows:
            new[name] = pd.Series(pd.NA, index=rows.index, dtype=current[name].dtype)
            continue
        values = rows[name]
        if name == target and schema.task == "classification":
            made_from = dict(zip(series_labels(current[name]), current[name].dropna(), strict=True))
            unknown = sorted(set(values) - set(made_from))
            if unknown:
                raise MonitorError(f"labels {unknown} are not classes of {target!r} in the data")
            values = values.map(made_from)
        try:
            new[name] = values.astype(current[name].dtype)
        except (TypeError, ValueError) as exc:
            raise MonitorError(
                f"logged column {name!r} does not fit the data's {current[name].dtype}: {exc}"
            ) from None
    return new
