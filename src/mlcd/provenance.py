"""Which commit a bundle on disk was built from, when git and DVC's cache can tell.

The bundle cannot record its own commit (a DVC output depends only on its declared inputs),
so `mlcd serve` asks: does dvc.lock at HEAD list this bundle, file for file? DVC keeps a
directory's listing (each file's md5) in its cache as a `.dir` object; comparing the bundle's
files with it needs neither dvc nor a network.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mlcd.dvcfiles import lock_at
from mlcd.errors import ConfigError, GitError
from mlcd.git import git

# The image sets it (Dockerfile: the commit it was built from).
COMMIT_ENV = "MLCD_GIT_COMMIT"


def serving_commit(root: Path, bundle: Path, given: str | None = None) -> str | None:
    """The commit /version reports, the one way it is found: `given` (--git-commit), else
    MLCD_GIT_COMMIT, else HEAD if its dvc.lock records exactly this bundle; None when unknown."""
    return given or os.environ.get(COMMIT_ENV) or bundle_commit(root, bundle)


def bundle_commit(root: Path, bundle: Path) -> str | None:
    """HEAD's commit if its dvc.lock records exactly the files in `bundle`; None when unknown."""
    try:
        relative = bundle.resolve().relative_to(root.resolve()).as_posix()
        head = git(root, "rev-parse", "HEAD").strip()
    except (ValueError, GitError):
        return None
    try:
        lock = lock_at(root, head)
    except ConfigError:  # a broken lock records nothing
        return None
    recorded = lock.output_md5(relative) if lock else None
    if recorded is None or not recorded.endswith(".dir"):
        return None
    recorded = recorded.removesuffix(".dir")
    listing = root / ".dvc" / "cache" / "files" / "md5" / recorded[:2] / f"{recorded[2:]}.dir"
    try:
        entries = json.loads(listing.read_text())
    except (OSError, ValueError):
        return None
    expected = {entry["relpath"]: entry["md5"] for entry in entries}
    actual = {path.relative_to(bundle).as_posix(): path for path in bundle.rglob("*") if path.is_file()}
    if set(expected) != set(actual):
        return None
    same = all(hashlib.md5(actual[name].read_bytes()).hexdigest() == md5 for name, md5 in expected.items())
    return head if same else None
