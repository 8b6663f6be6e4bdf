"""Wall time of `dvc repro` on the bundled data: cold, no-op, and after one train param.

Run: uv run python benchmarks/repro.py [--runs N]
Every run builds a fresh temp git repo holding a copy of this project, so the
cold figure starts from an empty DVC cache. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from _project import print_table, project_copy, sh, timed


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
    print_table("measurement", [one_run() for _ in range(parser.parse_args().runs)])


if __name__ == "__main__":
    main()
