"""What the MLflow mirror costs: `mlcd mlflow log` beside `dvc repro`, and the `mlflow` extra's size.

Run: uv run python benchmarks/mlflow_log.py [--runs N]
Starts a real MLflow server on loopback (full mlflow in its own venv, as the tests do), builds a
temp repo, reproduces it, then times a first `mlcd mlflow log` (run, metrics, figures, ONNX model)
and a repeat (found by its tag, nothing written). The size is what `uv pip install
mlflow-skinny` adds to a venv that already holds the pipeline extra.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _project import ENV, ROOT, print_table, project_copy, sh, timed

sys.path.insert(0, str(ROOT))
from tests.tracking.mlflow_server import start_mlflow


def one_run(url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = project_copy(Path(tmp) / "repo")
        figures = {"dvc repro (whole pipeline)": timed("dvc", "repro", cwd=repo)}
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-qm", "reproduced", cwd=repo)
        env = {"MLFLOW_TRACKING_URI": url}
        figures["mlcd mlflow log, first"] = timed_env(env, "mlcd", "mlflow", "log", cwd=repo)
        figures["mlcd mlflow log, again (no change)"] = timed_env(env, "mlcd", "mlflow", "log", cwd=repo)
        return figures


def timed_env(extra: dict[str, str], *args: str, cwd: Path) -> float:
    import time

    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env={**ENV, **extra}, check=True, capture_output=True)
    return time.perf_counter() - started


def extra_size() -> tuple[float, int]:
    """(MB, packages) that the mlflow extra adds on top of the pipeline extra."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        python = str(venv / "bin" / "python")
        subprocess.run(["uv", "venv", "-q", str(venv), "-p", sys.executable], check=True)
        requirements = Path(tmp) / "pipeline.txt"
        exported = [
            "uv",
            "export",
            "-q",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-header",
            "--no-hashes",
        ]
        subprocess.run([*exported, "--extra", "pipeline", "-o", str(requirements)], cwd=ROOT, check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", python, "-r", str(requirements)], check=True
        )
        before = _size(venv), _count(python)
        with_mlflow = Path(tmp) / "mlflow.txt"
        subprocess.run(
            [*exported, "--extra", "pipeline", "--extra", "mlflow", "-o", str(with_mlflow)],
            cwd=ROOT,
            check=True,
        )
        subprocess.run(["uv", "pip", "install", "-q", "--python", python, "-r", str(with_mlflow)], check=True)
        return (_size(venv) - before[0]) / 1e6, _count(python) - before[1]


def _size(venv: Path) -> int:
    return sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())


def _count(python: str) -> int:
    listed = subprocess.run(
        ["uv", "pip", "list", "--python", python], capture_output=True, text=True, check=True
    )
    return len(listed.stdout.splitlines()) - 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mlflow(Path(tmp) / "mlflow")
        try:
            print_table("step", [one_run(server.url) for _ in range(runs)])
        finally:
            server.stop()
    megabytes, packages = extra_size()
    print(f"\nthe mlflow extra adds {megabytes:.0f} MB in {packages} packages to the pipeline extra's venv")


if __name__ == "__main__":
    main()
