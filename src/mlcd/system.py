"""System programs mlcd drives (podman and its helpers, nginx): found on this host, never installed.

Installing packages is the machine owner's call (a user's laptop, a CI image, a shell
runner), so a missing program is an error that names the Debian packages to install.
Setting machines up lives in .ci/setup and the test fixtures, not here.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from mlcd.errors import MissingToolError

# Debian puts some daemons in sbin, which a non-root PATH often lacks.
_SBIN = (Path("/usr/sbin"), Path("/sbin"))


def find_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((str(d / name) for d in _SBIN if (d / name).is_file()), None)


def require_programs(programs: Mapping[str, str], purpose: str) -> dict[str, str]:
    """Paths of `programs` ({program: Debian package}), or MissingToolError naming what to install."""
    found = {name: find_program(name) for name in programs}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        packages = " ".join(sorted({programs[name] for name in missing}))
        raise MissingToolError(
            f"{purpose} needs {', '.join(missing)}, not found on PATH: install "
            f"`apt-get install {packages}` (Debian or Ubuntu, as root) and run it again"
        )
    return {name: path for name, path in found.items() if path is not None}
