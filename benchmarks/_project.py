"""Helpers for benchmarks: a temp git repo holding a copy of this project, and timers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = {"src", "data", "dvc.yaml", "dvc.lock", "params.yaml", ".dvc", ".dvcignore"}
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@mlcd.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@mlcd.invalid",
}


def sh(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, env=ENV, check=True, capture_output=True)


def timed(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    sh(*args, cwd=cwd)
    return time.perf_counter() - started


def project_copy(target: Path, everything: bool = False) -> Path:
    """Copy what git tracks (or would) of the pipeline (or of everything) into `target`, as a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (everything or name.split("/")[0] in COPIED) and (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    sh("git", "init", "-q", "-b", "main", cwd=target)
    sh("git", "add", "-A", cwd=target)
    sh("git", "commit", "-qm", "copy", cwd=target)
    return target


def synthetic_project(target: Path, rows: int) -> Path:
    """project_copy with `data.source: synthetic`, `data.rows: rows` and cross-validation off."""
    import yaml

    repo = project_copy(target)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="synthetic", rows=rows)
    params["train"]["cv_folds"] = 0
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def print_table(title: str, runs: list[dict[str, float]]) -> None:
    import statistics

    print(f"| {title} | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    print(f"\n{len(runs)} runs")
