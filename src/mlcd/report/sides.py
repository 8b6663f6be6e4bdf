"""One side of a comparison: what the pipeline produced at a revision, read through DVC.

The head is the workspace; the base is a commit. Everything comes from DVC (git for
`cache: false` files, the cache or remote for the rest), never from re-running stages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcd.bundle import open_bundle
from mlcd.ci_variables import ci_environment
from mlcd.config import (
    ABOUT_POSITIVE_CLASS,
    PLOT_NAMES,
    POSITIVE_CLASS_PLOTS,
    ProjectPaths,
    params_yaml_from_text,
)
from mlcd.errors import GitError, MlcdError
from mlcd.git import git, resolve_commit
from mlcd.versions.storage import NOT_IN_ANY_STORE, copy_out

_RELATIVE = ProjectPaths()  # paths as DVC names them, relative to the repository root
PROCESSED = tuple(p.as_posix() for p in (_RELATIVE.raw_data, _RELATIVE.train_data, _RELATIVE.test_data))
LATENCY_REPEATS = 300
# A side's bundle that cannot be fetched, or fails its manifest check: reported as missing.
_BUNDLE_UNAVAILABLE: tuple[type[Exception], ...] = (*NOT_IN_ANY_STORE, MlcdError)


@dataclass
class Side:
    label: str  # "base" or "head"
    rev: str | None  # commit sha; None for the workspace
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    data_hashes: dict[str, str | None] = field(default_factory=dict)
    plots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bundle_bytes: int | None = None
    bundle_dir: Path | None = None  # where its bundle can be loaded, while the report runs
    latency_ms: float | None = None
    positive_class: str | None = None  # from the bundle's schema.json; None if unknown or not binary
    search: dict[str, Any] = field(default_factory=dict)  # metrics/search.json: train.search's result
    missing: list[str] = field(default_factory=list)


def resolve_base(root: Path, explicit: str | None) -> tuple[str, str]:
    """(sha, how it was chosen): --base, the MR diff base, the merge-base with the target, or HEAD~1."""
    ci = ci_environment()
    # A base that was named but does not resolve is an error, never a silent fall-back: the report
    # would compare with something nobody asked for (a shallow CI clone lacks older commits).
    for named, how in ((explicit, "--base"), (ci.diff_base, "CI_MERGE_REQUEST_DIFF_BASE_SHA")):
        if named:
            if sha := resolve_commit(root, named):
                return sha, how
            raise GitError(
                f"{how} {named!r} is not a commit in this clone: check the name, or fetch more history "
                "(`git fetch --unshallow`; in GitLab CI set GIT_DEPTH: 0 for this job)"
            )
    candidates = []
    target = ci.target_branch or ci.default_branch
    head = resolve_commit(root, "HEAD")
    for branch in [f"origin/{target}", target]:
        if resolve_commit(root, branch):
            try:
                merge_base = git(root, "merge-base", "HEAD", branch).strip()
            except MlcdError:
                continue
            if merge_base != head:  # else HEAD is on that branch: its previous commit is the base
                candidates.append((merge_base, f"merge-base with {branch}"))
                break
    candidates.append(("HEAD~1", "HEAD~1"))
    for ref, how in candidates:
        if sha := resolve_commit(root, ref):
            return sha, how
    raise GitError("no base revision to compare with: pass --base <rev> (the repository has one commit)")


def _json_at(fs: Any, path: str) -> Any:
    try:
        return json.loads(fs.read_text(path))
    except (FileNotFoundError, OSError, ValueError):
        return None


def _filesystem(root: Path, rev: str | None) -> Any:
    from dvc.api import DVCFileSystem

    return DVCFileSystem(str(root), rev=rev)


def set_aside_other_positive_class(base: Side, head: Side) -> str | None:
    """If base and head are about different positive classes, drop base's figures for its class.

    Precision, recall, F1, ROC AUC, average precision and the ROC and precision-recall curves
    of the old class are not the new class's: compared, they would show a collapse (or a
    leap) that no model change caused. Returns the explanation, or None if nothing changed.
    """
    if (
        base.positive_class is None
        or head.positive_class is None
        or base.positive_class == head.positive_class
    ):
        return None
    for name in ABOUT_POSITIVE_CLASS:
        base.metrics.pop(name, None)
    for name in POSITIVE_CLASS_PLOTS:
        base.plots.pop(name, None)
    note = (
        f"the positive class changed from {base.positive_class!r} (base) to {head.positive_class!r} "
        f"(head): base's {', '.join(sorted(ABOUT_POSITIVE_CLASS))} and its curves are about another "
        "class, so they are not compared; accuracy, balanced accuracy and log loss still are"
    )
    base.missing.append(note)
    return note


def measure_latency(sides: list[Side]) -> None:
    """Median in-process latency of one-record predictions through onnxruntime, for every side with a bundle.

    The sides are timed in alternation, one prediction each per round, so whatever else loads the
    machine (a CI runner's other jobs) slows them alike and the ratio the gate reads stays fair.
    """
    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import to_batch

    measured = [side for side in sides if side.bundle_dir is not None]
    models = [BundleModel(side.bundle_dir) for side in measured]  # type: ignore[arg-type]
    records = [model.examples.records[0] for model in models]
    timings: list[list[float]] = [[] for _ in models]
    for _ in range(LATENCY_REPEATS + 30):
        for model, record, times in zip(models, records, timings, strict=True):
            started = time.perf_counter()
            batch = to_batch(record, model.layout, 1)
            model.predict(batch.numbers, batch.texts)
            times.append(time.perf_counter() - started)
    for side, times in zip(measured, timings, strict=True):
        side.latency_ms = float(np.median(times[30:]) * 1000)


def collect(root: Path, label: str, rev: str | None, scratch: Path) -> Side:
    """Read one side; its bundle is copied under `scratch` (the caller's temp dir) for measuring."""
    side = Side(label, rev)
    where = f"commit {rev[:8]}" if rev else "the workspace"
    fs = _filesystem(root, rev)
    paths = ProjectPaths(Path())
    side.metrics = _json_at(fs, paths.metrics.as_posix()) or {}
    if not side.metrics:
        side.missing.append(f"{paths.metrics} is missing at {where}")
    # params.yaml through the filesystem already open: dvc.api.params_show would build the
    # repository's index again (about 0.4 s a side). Old commits may have none, or one that does
    # not parse: the diff then shows every key as new.
    try:
        text = fs.read_text(paths.params.as_posix())
        side.params = params_yaml_from_text(text, f"{paths.params} at {where}")
    except (OSError, MlcdError):  # FileNotFoundError among them
        side.params = {}
    side.profile = _json_at(fs, paths.data_profile.as_posix()) or {}
    side.search = _json_at(fs, paths.search_metrics.as_posix()) or {}
    for path in PROCESSED:
        try:
            side.data_hashes[path] = fs.info(path).get("dvc_info", {}).get("md5")
        except (FileNotFoundError, OSError):
            side.data_hashes[path] = None
    for name in PLOT_NAMES:
        # A plot that does not fit the task is stored empty (see config.PLOT_NAMES).
        data = _json_at(fs, f"{paths.plots.as_posix()}/{name}.json")
        if isinstance(data, dict) and data.get(name):
            side.plots[name] = data[name]
    bundle = paths.bundle.as_posix()
    try:
        if rev is None and (root / bundle).is_dir():
            bundle_dir = root / bundle  # the workspace's own bundle: measured in place
        else:
            bundle_dir = scratch / label
            bundle_dir.mkdir(parents=True)
            copy_out(fs, bundle, bundle_dir)
        side.bundle_bytes = sum(p.stat().st_size for p in bundle_dir.iterdir())
        side.positive_class = open_bundle(bundle_dir).schema.positive_class
        side.bundle_dir = bundle_dir
    except _BUNDLE_UNAVAILABLE:
        side.missing.append(
            f"the model bundle {bundle} of {where} is not in the DVC cache or remote, so its size and "
            "latency are not compared; fix: `dvc push` from the pipeline that built it"
        )
    return side
