"""Helpers tests import by name (fixtures stay in conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def committed_text(path: str) -> str:
    """`path` as the project's HEAD commits it: what a clean clone gets, whatever the work tree holds."""
    return subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
