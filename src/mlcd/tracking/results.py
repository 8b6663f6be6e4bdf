"""One commit's (or the workspace's) pipeline results, gathered for a tracking server.

Everything comes from what git and DVC hold: params.yaml and the metrics files (kept in git),
the figures and the bundle (DVC outputs, read through DVCFileSystem at a revision), the hashes
in dvc.lock. Nothing here talks to MLflow, so the gathering is tested on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlcd.bundle import MANIFEST
from mlcd.config import LOCK_FILE, PARAMS_FILE, ProjectPaths, flatten
from mlcd.dvcfiles import Lock, model_artifact, parse_lock
from mlcd.errors import VersionError
from mlcd.git import git, resolve_commit, show_file
from mlcd.versions.storage import copy_out

REPORT_FILE = Path("report") / "report.md"  # `mlcd report --out report`, when it ran here


@dataclass
class PipelineResults:
    key: str  # what makes a run the same run: the commit and its dvc.lock's md5
    commit: str
    branch: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    cv_metrics: dict[str, float]
    hashes: dict[str, str]  # dvc.lock md5s: data, model, bundle
    experiment: str | None  # DVC experiment name, when the revision is one
    bundle: Path
    figures: list[Path] = field(default_factory=list)
    report: Path | None = None


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _resolve(root: Path, rev: str) -> tuple[str, str | None]:
    """(commit, DVC experiment name or None) for a commit-ish or a `dvc exp` name."""
    from dvc.repo import Repo as DvcRepo
    from dvc.scm import resolve_rev

    with DvcRepo(str(root)) as repo:
        try:
            commit = resolve_rev(repo.scm, rev)
        except Exception:  # dvc raises RevError subclasses from scmrepo
            commit = resolve_commit(root, rev)
        if commit is None:
            raise VersionError(f"{rev!r} is neither a commit, a tag nor a DVC experiment here")
        name = repo.experiments.get_exact_name([commit]).get(commit)
    return commit, name


def _branch(root: Path) -> str | None:
    from mlcd.ci_variables import ci_environment

    if branch := ci_environment().branch:  # a CI checkout is detached: the server names the branch
        return branch
    name = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    return None if name == "HEAD" else name


def _lock_hashes(lock: Lock, bundle_path: str) -> dict[str, str]:
    paths = ProjectPaths()
    wanted = {
        "data": paths.raw_data.as_posix(),
        "model": paths.model.as_posix(),
        "bundle": bundle_path,
    }
    found = lock.output_md5s()
    return {name: found[path] for name, path in wanted.items() if path in found}


def collect(root: Path, rev: str | None, workdir: Path) -> PipelineResults:
    """Results at `rev` (read through git and DVC) or, without one, in the workspace."""
    art = model_artifact(root)
    paths = ProjectPaths()
    if rev is None:
        commit = git(root, "rev-parse", "HEAD").strip()
        experiment = None  # a `dvc exp run` result is logged by its name: --rev <experiment>

        def read(path: Path) -> str | None:
            full = root / path
            return full.read_text(encoding="utf-8") if full.is_file() else None

        bundle = root / art.path
        figures = sorted((root / paths.figures).glob("*.png"))
        report = root / REPORT_FILE if (root / REPORT_FILE).is_file() else None
    else:
        commit, experiment = _resolve(root, rev)

        def read(path: Path) -> str | None:
            return show_file(root, commit, path.as_posix())

        bundle, figures = _dvc_outputs(root, commit, art.path, paths.figures.as_posix(), workdir)
        report = None  # a report is a CI artifact, not a pipeline output: only the workspace has one
    lock_text = read(Path(LOCK_FILE))
    if lock_text is None or not (bundle / MANIFEST).is_file():
        where = "the workspace" if rev is None else f"commit {commit[:8]}"
        raise VersionError(f"{where} has no reproduced pipeline (dvc.lock and {art.path}): run `dvc repro`")
    params = yaml.safe_load(read(Path(PARAMS_FILE)) or "{}") or {}
    metrics = json.loads(read(paths.metrics) or "{}")
    train = json.loads(read(paths.train_metrics) or "{}")
    return PipelineResults(
        key=f"{commit}:{hashlib.md5(lock_text.encode()).hexdigest()}",
        commit=commit,
        branch=_branch(root),
        params={
            k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in flatten(params).items()
        },
        metrics=_numbers(flatten(metrics)),
        cv_metrics=_numbers(flatten(train.get("cv", {}), "cv.")),
        hashes=_lock_hashes(parse_lock(lock_text), art.path),
        experiment=experiment,
        bundle=bundle,
        figures=figures,
        report=report,
    )


def _dvc_outputs(
    root: Path, commit: str, bundle: str, figures: str, workdir: Path
) -> tuple[Path, list[Path]]:
    """The bundle and the figures of `commit`, from the cache or the remote, copied into `workdir`."""
    from dvc.api import DVCFileSystem

    from mlcd.versions.storage import NOT_IN_ANY_STORE

    fs = DVCFileSystem(str(root), rev=commit)
    bundle_copy, figures_copy = workdir / "bundle", workdir / "figures"
    for target in (bundle_copy, figures_copy):
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
    try:
        copy_out(fs, bundle, bundle_copy)
    except NOT_IN_ANY_STORE:
        raise VersionError(
            f"the bundle of commit {commit[:8]} is in neither the DVC cache nor the remote: "
            "`dvc pull` it first"
        ) from None
    with contextlib.suppress(*NOT_IN_ANY_STORE):  # figures are nice to have: the run still counts
        copy_out(fs, figures, figures_copy)
    return bundle_copy, sorted(figures_copy.glob("*.png"))
