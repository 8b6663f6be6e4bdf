"""Wall time of `dvc repro` on the bundled data: cold, no-op, and after one train param.

Run: uv run python benchmarks/repro.py [--runs N]
Builds a fresh temp git repo holding a copy of this project for every run, so the
cold figure includes an empty DVC cache. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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


def project_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        if name.split("/")[0] in {
            "src",
            "data",
            "dvc.yaml",
            "dvc.lock",
            "params.yaml",
            ".dvc",
            ".dvcignore",
        }:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    sh("git", "init", "-q", cwd=target)
    sh("git", "add", "-A", cwd=target)
    sh("git", "commit", "-qm", "copy", cwd=target)
    return target


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = project_copy(Path(tmp) / "repo")
        cold = timed("dvc", "repro", cwd=repo)
        noop = timed("dvc", "repro", cwd=repo)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["train"]["logistic_regression"]["C"] = 0.5
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        changed = timed("dvc", "repro", cwd=repo)
        started = time.perf_counter()
        for stage in ("ingest", "validate", "preprocess", "train", "evaluate", "package"):
            sh("mlcd", stage, cwd=repo)
        bare = time.perf_counter() - started
        return {
            "cold dvc repro (6 stages)": cold,
            "no-op dvc repro": noop,
            "dvc repro after train.C change": changed,
            "6 mlcd stages without dvc": bare,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = [one_run() for _ in range(parser.parse_args().runs)]
    print(f"| measurement | median s | min s | max s |  (runs: {len(runs)})")
    print("|---|---:|---:|---:|")
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(
            f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
