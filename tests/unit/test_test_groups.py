"""The suite's own parallel layout (tests/conftest.py): each module's tests run in one process.

pytest-xdist's --dist loadgroup reads the group each test is given; when a pytest release stops
passing it on (pytest 9.2, pinned out in pyproject.toml), nothing fails, but every module's
fixtures are built once per process and the suite takes minutes longer. This notices.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ..helpers import PROJECT_ROOT, command_env

MODULE = "tests/unit/test_layers.py"  # two fast tests, no fixtures


@pytest.mark.slow  # starts pytest and two xdist processes: 3 to 6 s, outside the fast tier
def test_a_modules_tests_run_in_one_process_under_xdist(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            MODULE,
            "-v",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
            # Its own temporary folder: by default a pytest run deletes all but the three newest under
            # /tmp/pytest-of-<user>, gigabytes of earlier runs' repositories (20 s of this test's 28).
            "--basetemp",
            str(tmp_path / "basetemp"),
        ],
        cwd=PROJECT_ROOT,
        env={**command_env(), "PYTEST_ADDOPTS": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*PASSED (\S+)", done.stdout, re.M)
    assert len(ran) == 2, done.stdout[-3000:]
    assert all(nodeid.endswith(f"@{MODULE}") for _, nodeid in ran), f"no group in the node ids: {ran}"
    assert len({worker for worker, _ in ran}) == 1, f"one module ran in two processes: {ran}"
