"""The reproduce job: pull what the remote has, `dvc repro`, prove dvc.lock was right, push on main."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlcd.ci.lockcheck import explain, lock_drift
from mlcd.ci.remote import URL_VARIABLE, configure_remote
from mlcd.config import ProjectPaths
from mlcd.console import info, warn
from mlcd.errors import PipelineError
from mlcd.versions.gitrepo import show_file


@dataclass
class Reproduced:
    remote: str | None
    pushed: bool
    model_hash: str
    seconds: dict[str, float]


def dvc(root: Path, *args: str) -> None:
    """Run dvc in this environment with its output in the job log."""
    info(f"$ dvc {' '.join(args)}")
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=False)
    if done.returncode != 0:
        raise PipelineError(f"`dvc {' '.join(args)}` failed (exit {done.returncode}); its output is above")


def reproduce(root: Path, push: bool, dotenv: Path | None) -> Reproduced:
    committed_text = show_file(root, "HEAD", "dvc.lock")
    if committed_text is None:
        raise PipelineError("HEAD has no dvc.lock: run `dvc repro` and commit dvc.lock")
    remote = configure_remote(root, os.environ)
    if push and remote is None:
        raise PipelineError(f"cannot push outputs: set the CI/CD variable {URL_VARIABLE} (see README)")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if remote is None:
        warn(f"{URL_VARIABLE} is not set: reproducing from scratch, nothing pulled or pushed")
    else:
        info(f"DVC remote: {remote}")
        # Outputs and run-cache the remote lacks are fine: dvc repro makes them.
        dvc(root, "pull", "--run-cache", "--allow-missing")
        seconds["pull"] = time.perf_counter() - started
    started = time.perf_counter()
    dvc(root, "repro")
    seconds["repro"] = time.perf_counter() - started
    reproduced = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    if drifts := lock_drift(yaml.safe_load(committed_text), reproduced):
        raise PipelineError("the committed dvc.lock does not match the reproduced pipeline:", explain(drifts))
    if push:
        started = time.perf_counter()
        dvc(root, "push", "--run-cache")
        seconds["push"] = time.perf_counter() - started
    manifest = json.loads((ProjectPaths(root).bundle / "manifest.json").read_text(encoding="utf-8"))
    if dotenv is not None:
        # A dotenv report hands these to later jobs (build labels the image with them).
        dotenv.write_text(f"MODEL_HASH={manifest['model_hash']}\n", encoding="utf-8")
    return Reproduced(remote, push, manifest["model_hash"], seconds)
