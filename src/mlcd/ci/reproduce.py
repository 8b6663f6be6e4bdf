"""The reproduce job: `dvc repro` with what the remote has, prove dvc.lock was right, push on main.

Proof has three verdicts. Identical: every reproduced output has the committed bytes.
Equivalent: some bytes differ, but only by float noise (reproducibility/equivalence.py compares
contents); the job passes and names the largest difference. Different: a stage gave
other results from the same inputs; the job fails, naming stage, file and difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd.blas import CORETYPE_VARIABLE
from mlcd.bundle import MANIFEST, read_manifest
from mlcd.ci.remote import URL_VARIABLE, configure_remote, probe_remote, remote_timeout
from mlcd.config import Params, ProjectPaths, load_params
from mlcd.console import info, warn
from mlcd.dvcfiles import Lock, lock_at, read_lock, stage_and_downstream
from mlcd.errors import PipelineError
from mlcd.files import read_json
from mlcd.metrics_lines import metrics_lines
from mlcd.reproducibility.equivalence import (
    Comparison,
    ModelCheck,
    Verdict,
    compare_output,
    judge_by_metrics,
    overall,
)
from mlcd.reproducibility.lockcheck import explain, lock_drift
from mlcd.versions.storage import NOT_IN_ANY_STORE

PACKAGE_STAGE = "package"  # the dvc.yaml stage that writes the bundle


@dataclass
class Reproduced:
    remote: str | None
    pushed: bool
    model_hash: str
    seconds: dict[str, float]
    verdict: Verdict = Verdict.IDENTICAL
    comparisons: list[Comparison] = field(default_factory=list)


def dvc(root: Path, *args: str) -> None:
    """Run dvc in this environment with its output in the job log."""
    info(f"$ dvc {' '.join(args)}")
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=False)
    if done.returncode != 0:
        raise PipelineError(f"`dvc {' '.join(args)}` failed (exit {done.returncode}); its output is above")


def model_check(root: Path, params: Params) -> ModelCheck | None:
    """The test split and tolerance models are judged by; None when the workspace has no test split."""
    from mlcd.data.model_input import read_split
    from mlcd.data.schema import load_schema
    from mlcd.data.tables import table_exists
    from mlcd.modeling.package import onnx_feeds, parity_tolerance

    paths = ProjectPaths(root)
    if not table_exists(paths.test_data):
        return None
    schema = load_schema(paths.schema(params.data)).for_model()
    features, _ = read_split(paths.test_data, schema)
    return ModelCheck(
        features, parity_tolerance(params), lambda frame, names: onnx_feeds(frame, schema, names)
    )


def judge(root: Path, committed: Lock, reproduced: Lock) -> list[Comparison]:
    """Compare every output whose hash moved; raise on stale stages or a real difference."""
    drifts = lock_drift(committed.stages, reproduced.stages)
    if any(drift.kind == "stale" for drift in drifts):
        raise PipelineError("the committed dvc.lock does not match the reproduced pipeline:", explain(drifts))
    if not drifts:
        return []
    from dvc.api import DVCFileSystem

    committed_fs = DVCFileSystem(str(root), rev="HEAD")
    params = load_params(ProjectPaths(root).params)
    check = model_check(root, params)
    comparisons = [
        comparison
        for drift in drifts
        for output in drift.changed_outputs
        for comparison in compare_output(drift.stage, output, root, committed_fs, check)
    ]
    comparisons = _trained_on_a_cluster(root, params, committed_fs, comparisons)
    if overall(comparisons) is Verdict.DIFFERENT:
        raise PipelineError(
            "the reproduced pipeline differs from the committed dvc.lock by more than float noise: "
            "the same inputs gave other results. Seed or sort what varies between runs, then "
            "`dvc repro` twice to check, and commit dvc.lock:",
            [c.line() for c in comparisons if c.verdict is not Verdict.EQUIVALENT],
        )
    return comparisons


def _trained_on_a_cluster(
    root: Path, params: Params, committed_fs: Any, comparisons: list[Comparison]
) -> list[Comparison]:
    """With XGBoost trained across Dask workers here, train's outputs and all that follows from them are
    judged by the test metrics (equivalence.judge_by_metrics), not by bytes or predictions."""
    from mlcd.modeling.train import TRAIN_STAGE, depends_on_cluster_shape

    paths = ProjectPaths(root)
    if not depends_on_cluster_shape(params.data, params.train):
        return comparisons
    metrics = paths.metrics.relative_to(root).as_posix()
    try:
        committed, reproduced = committed_fs.read_bytes(metrics), paths.metrics.read_bytes()
    except NOT_IN_ANY_STORE:  # OSError included: no reproduced metrics either
        return comparisons  # nothing to judge by: the byte and prediction verdicts stand
    limits, _ = params.gate.metric_limits(set(json.loads(reproduced)))
    verdict, detail = judge_by_metrics(committed, reproduced, limits)
    detail = f"trained by XGBoost across Dask workers, whose model depends on the cluster's shape: {detail}"
    after_train = stage_and_downstream(root, TRAIN_STAGE)
    return [
        Comparison(c.stage, c.path, verdict, detail)
        if c.stage in after_train and c.verdict is not Verdict.UNVERIFIED
        else c
        for c in comparisons
    ]


def _run_pipeline(root: Path, remote: str | None, push: bool, force: bool) -> None:
    bundle = ProjectPaths().bundle.as_posix()
    if remote is None:
        warn(f"{URL_VARIABLE} is not set: reproducing from scratch, nothing pulled or pushed")
    else:
        info(f"DVC remote: {remote}")
    if force:
        # Every stage runs here; the committed outputs are fetched first so they can be compared.
        if remote is not None:
            dvc(root, "pull", "--allow-missing")
        dvc(root, "repro", "--force")
    elif remote is None:
        dvc(root, "repro")
    elif push:
        # The default branch makes whatever the remote lacks, so it can push it afterwards.
        dvc(root, "pull", "--run-cache", "--allow-missing")
        dvc(root, "repro")
    else:
        # A merge request fetches only what the stages that re-run need, plus the bundle for build.
        dvc(root, "repro", "--pull", "--allow-missing")
        dvc(root, "pull", "--allow-missing", bundle)
        if not (root / bundle / MANIFEST).is_file():
            info("the remote has no copy of the committed bundle (not pushed?): building it here")
            dvc(root, "repro", "--pull", PACKAGE_STAGE)


def reproduce(
    root: Path, push: bool, dotenv: Path | None, force: bool = False, metrics_report: Path | None = None
) -> Reproduced:
    paths = ProjectPaths(root)
    committed = lock_at(root, "HEAD")
    if committed is None:
        raise PipelineError(f"HEAD has no {paths.lock.name}: run `dvc repro` and commit it")
    remote = configure_remote(root, os.environ)
    if push and remote is None:
        raise PipelineError(f"cannot push outputs: set the CI/CD variable {URL_VARIABLE} (see README)")
    if remote is not None:
        probe_remote(root, remote, remote_timeout(os.environ))
    info(f"BLAS kernel: {os.environ.get(CORETYPE_VARIABLE) or 'chosen by OpenBLAS for this CPU'}")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    _run_pipeline(root, remote, push, force)
    seconds["repro"] = time.perf_counter() - started
    reproduced = read_lock(root)
    if reproduced is None:
        raise PipelineError(f"`dvc repro` left no {paths.lock.name}")
    started = time.perf_counter()
    comparisons = judge(root, committed, reproduced)
    seconds["compare"] = time.perf_counter() - started
    if push:
        started = time.perf_counter()
        dvc(root, "push", "--run-cache")
        seconds["push"] = time.perf_counter() - started
        if changed := sorted({c.path for c in comparisons if c.verdict is Verdict.EQUIVALENT}):
            # The remote now holds this runner's bytes; the lock's own objects exist where it was made.
            warn(
                "pushed this runner's equivalent outputs; the committed dvc.lock's own copies of "
                f"{', '.join(changed)} reach the remote only by `dvc push` from the machine that made it"
            )
    manifest = read_manifest(paths.bundle)
    if metrics_report is not None:
        metrics_report.write_text(metrics_lines(read_json(paths.metrics)), encoding="utf-8")
    if dotenv is not None:
        # A dotenv report hands these to later jobs (build labels the image with them).
        dotenv.write_text(f"MODEL_HASH={manifest.model_hash}\n", encoding="utf-8")
    return Reproduced(remote, push, manifest.model_hash, seconds, overall(comparisons), comparisons)
