"""ruff and mypy are part of the test run, so style and type problems fail CI like any other.

ruff runs here; mypy (strict, about 30 s cold) runs in CI's check job, which
tests/ci/test_gitlab_ci.py runs for real on a copy of every file here and requires to pass.
"""

import subprocess
import sys
from pathlib import Path

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
