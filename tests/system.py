"""Setting the test machine up: Debian packages installed with apt-get when a test needs them.

mlcd never installs anything (it names the packages and exits 2); preparing a machine
belongs here and in .ci/setup. Each installer is a no-op when the programs are present.
"""

from __future__ import annotations

import os
import subprocess

from mlcd.container.podman import TOOLS as PODMAN_TOOLS
from mlcd.system import find_program


def apt_install(*packages: str, programs: tuple[str, ...]) -> None:
    """Install `packages` unless every one of `programs` is already found."""
    if all(find_program(program) for program in programs):
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
