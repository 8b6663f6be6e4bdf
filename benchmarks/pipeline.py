"""The pipeline at scale: synthetic data at 10k to 10M rows, against bare scikit-learn.

Run: uv run python benchmarks/pipeline.py [--sizes 10000,100000,1000000,10000000]
For every size, a fresh temp repo (copy of this project) with `data.source:
synthetic`, `data.rows: N` and cross-validation off, and one `dvc repro -s`
per stage, each timed by a wrapper process (wall time of the whole call, dvc and
the stage's imports included, and the peak RSS of its children). Then a
no-op `dvc repro`, and the bare baseline (benchmarks/_baseline.py, also timed
from process start) on the same raw Parquet. Prints a table and writes
benchmarks/pipeline.png (time and memory against rows). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import ENV, synthetic_project

HERE = Path(__file__).resolve().parent
STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "package")
WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
    "print(json.dumps({'s': time.perf_counter() - t,"
    " 'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
)


def measured(*args: str, cwd: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=ENV, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def dataset_mb(path: Path) -> float:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    size = table.nbytes / 2**20
    del table
    return size


def one_size(rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = synthetic_project(Path(tmp) / "repo", rows)
        result: dict[str, float] = {"rows": rows}
        for stage in STAGES:
            figures = measured("dvc", "repro", "-s", stage, cwd=repo)
            result[f"{stage}_s"], result[f"{stage}_rss_mb"] = figures["s"], figures["rss_mb"]
            print(
                f"  {rows:>10,} {stage:<10} {figures['s']:8.2f} s {figures['rss_mb']:8.0f} MB",
                file=sys.stderr,
            )
        result["repro_s"] = sum(result[f"{s}_s"] for s in STAGES)
        result["after_ingest_s"] = result["repro_s"] - result["ingest_s"]
        started = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=repo, env=ENV, check=True, capture_output=True)
        result["noop_s"] = time.perf_counter() - started
        raw = repo / "data" / "raw" / "dataset.parquet"
        baseline = measured(sys.executable, str(HERE / "_baseline.py"), str(raw), cwd=repo)
        result["baseline_s"], result["baseline_rss_mb"] = baseline["s"], baseline["rss_mb"]
        result["dataset_mb"] = dataset_mb(raw)
        result["peak_rss_mb"] = max(result[f"{s}_rss_mb"] for s in STAGES)
        return result


def table(results: list[dict[str, float]]) -> str:
    head = [
        "rows",
        *[f"{s} s" for s in STAGES],
        "dvc repro s",
        "no-op s",
        "baseline s",
        "after ingest / baseline",
        "peak RSS MB",
        "data MB",
        "RSS / data",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        cells = [
            f"{int(r['rows']):,}",
            *[f"{r[f'{s}_s']:.1f}" for s in STAGES],
            f"{r['repro_s']:.1f}",
            f"{r['noop_s']:.2f}",
            f"{r['baseline_s']:.1f}",
            f"{r['after_ingest_s'] / r['baseline_s']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['dataset_mb']:.0f}",
            f"{r['peak_rss_mb'] / r['dataset_mb']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    stage_rss = [
        "| rows | " + " | ".join(f"{s} RSS MB" for s in STAGES) + " | baseline RSS MB |",
        "|" + "---:|" * (len(STAGES) + 2),
    ]
    for r in results:
        stage_rss.append(
            f"| {int(r['rows']):,} | "
            + " | ".join(f"{r[f'{s}_rss_mb']:.0f}" for s in STAGES)
            + f" | {r['baseline_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(stage_rss)


def plot(results: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r["rows"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (
        ("repro_s", "dvc repro (all stages)"),
        ("after_ingest_s", "stages after ingest"),
        ("baseline_s", "bare scikit-learn"),
    ):
        left.plot(rows, [r[key] for r in results], marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="rows", ylabel="seconds", title="wall time")
    for key, label in (
        ("peak_rss_mb", "pipeline peak RSS"),
        ("baseline_rss_mb", "baseline peak RSS"),
        ("dataset_mb", "dataset in memory"),
    ):
        right.plot(rows, [r[key] for r in results], marker="o", label=label)
    right.set(xscale="log", yscale="log", xlabel="rows", ylabel="MB", title="memory")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    parser.add_argument("--plot", type=Path, default=HERE / "pipeline.png")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    options = parser.parse_args()
    results = [one_size(rows) for rows in sizes]
    print(table(results))
    plot(results, options.plot)
    print(f"\nplot: {options.plot}")


if __name__ == "__main__":
    main()
