"""A real `mlcd serve` process for the tests that need sockets, timeouts and several workers."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

from mlcd.http_client import free_port, wait_ready

from ..helpers import command_env


@contextmanager
def served(bundle: Path, *args: str, cwd: Path | None = None):
    """`mlcd serve` on a free loopback port until the block ends: (port, process)."""
    port = free_port()
    process = subprocess.Popen(
        ["mlcd", "serve", "--bundle", str(bundle), "--port", str(port), *args],
        cwd=cwd,
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=30.0)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=20)
