"""Setting the test machine up: Debian packages installed with apt-get when a test needs them,
and what the suite's test processes (pytest-xdist) share.

mlcd never installs anything (it names the packages and exits 2); preparing a machine
belongs here and in .ci/setup. Each installer is a no-op when the programs are present.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from mlcd.container.podman import TOOLS as PODMAN_TOOLS
from mlcd.system import find_program


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Held by one test process at a time (pytest-xdist runs two): around an install into a place
    every process shares (apt's dpkg, .ci/tools' npm packages, the MLflow venv)."""
    path = Path(tempfile.gettempdir()) / f"mlcd-tests-{name}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


T = TypeVar("T")


def built_once(name: str, factory: pytest.TempPathFactory, build: Callable[[Path], T]) -> T:
    """What `build(folder)` returns, built once per test session: under pytest-xdist the first process
    to ask builds it in a folder of the session's that every process sees, the others wait and get
    the same result (pickled). For what tests only read or copy (clone_repo), never change in place."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(factory.mktemp(name))
    shared = factory.getbasetemp().parent / f"built-once-{name}"  # pytest-N/: this session's only
    result = shared / "result.pickle"
    with (shared.parent / f"built-once-{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        if not result.exists():
            shutil.rmtree(shared, ignore_errors=True)  # what a failed attempt left
            shared.mkdir()
            built = build(shared / "work")
            result.write_bytes(pickle.dumps(built))
        loaded: T = pickle.loads(result.read_bytes())
        return loaded


def apt_install(*packages: str, programs: tuple[str, ...]) -> None:
    """Install `packages` unless every one of `programs` is already found."""
    if all(find_program(program) for program in programs):
        return
    with machine_lock("apt"):
        if all(find_program(program) for program in programs):  # the other process installed them
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            done = subprocess.run(args, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


def install_podman() -> None:
    apt_install(*sorted(set(PODMAN_TOOLS.values())), programs=tuple(PODMAN_TOOLS))


def install_nginx() -> None:
    apt_install("nginx-light", programs=("nginx",))
