"""The few git operations versions need, as plain functions over a repo root."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import NamedTuple

from mlcd.errors import VersionError


def git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise VersionError("git is not installed; versions need git") from None
    except subprocess.CalledProcessError as exc:
        raise VersionError(f"git {' '.join(args)} failed: {exc.stderr.strip()}") from None
    return done.stdout


def dirty_files(root: Path) -> list[str]:
    """Tracked changes and untracked files git does not ignore: what a checkout could lose."""
    return [line for line in git(root, "status", "--porcelain").splitlines() if line.strip()]


def require_clean(root: Path) -> None:
    if dirty := dirty_files(root):
        raise VersionError("the workspace has uncommitted changes; commit or stash them first:", dirty)


def resolve_commit(root: Path, ref: str) -> str | None:
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except VersionError:
        return None


def show_file(root: Path, commit: str, path: str) -> str | None:
    try:
        return git(root, "show", f"{commit}:{path}")
    except VersionError:
        return None


def first_commit_containing(root: Path, text: str, path: str) -> str | None:
    """The oldest commit that added `text` to `path` (git's pickaxe search)."""
    found = git(root, "log", "--reverse", "--format=%H", f"-S{text}", "--", path).split()
    return found[0] if found else None


def short(commit: str) -> str:
    return commit[:8]


class Semver(NamedTuple):
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Semver:
        match = re.fullmatch(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", text.strip())
        if not match:
            raise VersionError(
                f"{text!r} is not a version: use MAJOR.MINOR.PATCH, e.g. 1.4.0 (a leading v is fine)"
            )
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"
