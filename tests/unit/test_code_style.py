"""ruff and mypy are part of the test run, so style and type problems fail CI like any other."""

import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import PROJECT_ROOT

RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_lint_is_clean():
    done = subprocess.run(
        [RUFF, "check", "src", "tests", "benchmarks"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean():
    done = subprocess.run(
        [RUFF, "format", "--check", "src", "tests", "benchmarks"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow  # about 30 s: CI's check job runs mypy on its own, the fast tier leaves it to that
def test_mypy_is_clean():
    """[tool.mypy] in pyproject.toml: src/, strict, with the pydantic plugin."""
    done = subprocess.run(
        [Path(sys.executable).parent / "mypy"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
