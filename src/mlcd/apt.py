"""Debian packages mlcd installs on demand (podman and friends, nginx), with apt-get as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from mlcd.console import working
from mlcd.errors import MlcdError


def apt_install(packages: Sequence[str], error: type[MlcdError]) -> None:
    """Install `packages`, or raise `error` saying why not (not root, no apt-get, apt-get failed)."""
    names = ", ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise error(f"missing {names}: install them with apt-get (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with working(f"installing {names} with apt-get"):
        for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
            done = subprocess.run(args, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise error(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
