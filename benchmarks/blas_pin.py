"""What the OpenBLAS pin costs: the BLAS-heavy stages pinned to Haswell against OpenBLAS's own choice.

Run: uv run python benchmarks/blas_pin.py [--sizes 1000000,10000000] [--repeats 2]
For every size, a fresh temp repo (copy of this project) with `data.source:
synthetic`, `data.rows: N` and cross-validation off; ingest, validate and
preprocess run once. Then train, evaluate and package are forced to re-run
(`dvc repro --force -s`) under each setting, alternating, `--repeats` times:
  pinned   mlcd's default (OPENBLAS_CORETYPE=Haswell where the CPU has AVX2+FMA)
  auto     MLCD_BLAS_KERNEL=auto: OpenBLAS picks the kernel for this CPU
plus the older kernels a runner without AVX2 would use, for scale. The kernel
OpenBLAS actually loaded is read back through threadpoolctl. Prints a table
(median seconds of the three stages, and pinned/auto). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import ENV, synthetic_project

BLAS_STAGES = ("train", "evaluate", "package")
SETTINGS: dict[str, dict[str, str]] = {
    "pinned": {},
    "auto": {"MLCD_BLAS_KERNEL": "auto"},
    "Sandybridge": {"OPENBLAS_CORETYPE": "Sandybridge"},
    "Prescott": {"OPENBLAS_CORETYPE": "Prescott"},
}
# The pin first, numpy after: the order `mlcd`'s entry point keeps.
_KERNEL_PROBE = (
    "import mlcd.blas; mlcd.blas.pin_blas_kernel(); import numpy, threadpoolctl; "
    "print(next(i.get('architecture') for i in threadpoolctl.threadpool_info()"
    " if i['internal_api'] == 'openblas'))"
)


def env_for(setting: str) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k not in ("OPENBLAS_CORETYPE", "MLCD_BLAS_KERNEL")}
    return {**env, **SETTINGS[setting]}


def loaded_kernel(setting: str, repo: Path) -> str:
    env = {**env_for(setting), "PYTHONPATH": str(repo / "src")}
    done = subprocess.run([sys.executable, "-c", _KERNEL_PROBE], env=env, capture_output=True, text=True)
    return done.stdout.strip() or f"? ({done.stderr.strip()[-200:]})"


def blas_stages_seconds(repo: Path, setting: str) -> float:
    started = time.perf_counter()
    for stage in BLAS_STAGES:
        command = ["dvc", "repro", "--force", "-s", stage]
        subprocess.run(command, cwd=repo, env=env_for(setting), check=True, capture_output=True)
    return time.perf_counter() - started


def one_size(rows: int, repeats: int, settings: list[str]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = synthetic_project(Path(tmp) / "repo", rows)
        subprocess.run(["dvc", "repro", "preprocess"], cwd=repo, env=ENV, check=True, capture_output=True)
        kernels = {s: loaded_kernel(s, repo) for s in settings}
        times: dict[str, list[float]] = {s: [] for s in settings}
        for round_ in range(repeats):
            for setting in settings:  # alternating, so drift in the machine's speed hits all alike
                seconds = blas_stages_seconds(repo, setting)
                times[setting].append(seconds)
                print(f"  {rows:>10,} {setting:<12} run {round_ + 1}: {seconds:6.1f} s", file=sys.stderr)
        return {f"{s} [{kernels[s]}]": t for s, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="any of " + ", ".join(SETTINGS))
    options = parser.parse_args()
    settings = options.settings.split(",")
    print(f"CPU: {_cpu_model()}; threads: {os.cpu_count()}\n")
    print("| rows | setting [kernel loaded] | train+evaluate+package median s | min s | vs auto |")
    print("|---:|---|---:|---:|---:|")
    for rows in (int(s) for s in options.sizes.split(",")):
        results = one_size(rows, options.repeats, settings)
        auto = next((statistics.median(t) for name, t in results.items() if name.startswith("auto ")), None)
        for name, runs in results.items():
            median = statistics.median(runs)
            ratio = f"{median / auto:.2f}" if auto else "-"
            print(f"| {rows:,} | {name} | {median:.1f} | {min(runs):.1f} | {ratio} |")
    print(f"\n{options.repeats} run(s) per setting, alternating")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown"


if __name__ == "__main__":
    main()
