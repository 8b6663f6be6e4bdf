"""Wall time of `mlcd restore` from the local DVC cache and from the remote alone.

Run: uv run python benchmarks/restore.py [--runs N]
Builds a temp repo with two pushed releases (bundled data), then restores the
older one with --out and into the workspace, first with the cache, then with
the cache deleted so every object comes from the local-directory remote.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import yaml
from _project import print_table, project_copy, sh, timed


def released_repo(tmp: Path) -> Path:
    repo = project_copy(tmp / "repo")
    for version, c in (("1.0.0", 1.0), ("1.1.0", 0.1)):
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["train"]["logistic_regression"]["C"] = c
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        sh("dvc", "repro", cwd=repo)
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-qm", version, cwd=repo)
        sh("dvc", "push", cwd=repo)
        sh("mlcd", "release", version, cwd=repo)
    return repo


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = released_repo(Path(tmp))
        cache = repo / ".dvc" / "cache"
        figures = {
            "restore --out, local cache": timed("mlcd", "restore", "1.0.0", "--out", f"{tmp}/a", cwd=repo)
        }
        figures["restore workspace, local cache"] = timed("mlcd", "restore", "1.0.0", cwd=repo)
        figures["plain git switch + dvc checkout, local cache"] = timed(
            "sh", "-c", "git switch -q main && dvc checkout -q", cwd=repo
        )
        shutil.rmtree(cache)
        figures["restore --out, remote only"] = timed(
            "mlcd", "restore", "1.0.0", "--out", f"{tmp}/b", cwd=repo
        )
        figures["restore workspace, remote only"] = timed("mlcd", "restore", "1.0.0", cwd=repo)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    print_table("restore", [one_run() for _ in range(parser.parse_args().runs)])


if __name__ == "__main__":
    main()
