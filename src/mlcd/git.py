"""The git operations mlcd needs (report, ci, image, versions), as plain functions over a repo root.

Every failure is a GitError naming the git command and what git said.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from mlcd.errors import GitError


def git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise GitError("git is not installed: install it (Debian: `apt-get install git`)") from None
    except subprocess.CalledProcessError as exc:
        raise GitError(f"git {' '.join(args)} failed in {root}: {exc.stderr.strip()}") from None
    return done.stdout


def dirty_files(root: Path) -> list[str]:
    """Tracked changes and untracked files git does not ignore: what a checkout could lose."""
    return [line for line in git(root, "status", "--porcelain").splitlines() if line.strip()]


def require_clean(root: Path) -> None:
    if dirty := dirty_files(root):
        raise GitError("the workspace has uncommitted changes; commit or stash them first:", dirty)


def resolve_commit(root: Path, ref: str) -> str | None:
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except GitError:
        return None


def show_file(root: Path, commit: str, path: str) -> str | None:
    try:
        return git(root, "show", f"{commit}:{path}")
    except GitError:
        return None


def first_commit_containing(root: Path, text: str, path: str) -> str | None:
    """The oldest commit that added `text` to `path` (git's pickaxe search)."""
    found = git(root, "log", "--reverse", "--format=%H", f"-S{text}", "--", path).split()
    return found[0] if found else None


def short(commit: str) -> str:
    return commit[:8]


# The lock files a `git checkout` takes: killed by -9, git leaves them and every later git
# command that moves HEAD or writes the index refuses until they are gone.
CHECKOUT_LOCKS = ("index.lock", "HEAD.lock")


def remove_stale_checkout_locks(root: Path) -> tuple[list[str], list[str]]:
    """Delete the checkout locks no live git holds: what a `git checkout` killed by -9 leaves.

    Only for recovering from an interrupted mlcd command. A lock counts as live while any process
    has it open or any git process works in this repository (git closes a ref's lock file before
    it renames it), so a running git keeps every lock. Returns the locks removed and the locks
    still held, as git names them.
    """
    locks = [
        (name, (root / git(root, "rev-parse", "--git-path", name).strip()).resolve())
        for name in CHECKOUT_LOCKS
    ]
    left = [(name, lock) for name, lock in locks if lock.exists()]
    if left and _git_running_in(root.resolve()):
        return [], [name for name, _ in left]
    held = [name for name, lock in left if _open_anywhere(lock)]
    if held:  # all or none: the recovery runs only once no git is at work here
        return [], held
    for _, lock in left:
        lock.unlink(missing_ok=True)
    return [name for name, _ in left], []


def _open_anywhere(path: Path) -> bool:
    """Whether any process on this machine holds `path` open."""
    return _any_process(lambda pid: any(link.resolve() == path for link in (pid / "fd").iterdir()))


def _git_running_in(root: Path) -> bool:
    """Whether a git process works in `root` or below it."""

    def works_here(pid: Path) -> bool:
        if (pid / "comm").read_text().strip() != "git":
            return False
        cwd = (pid / "cwd").resolve()
        return cwd == root or root in cwd.parents

    return _any_process(works_here)


def _any_process(test: Callable[[Path], bool]) -> bool:
    """Whether `test` holds for any process's /proc directory (Linux; elsewhere assume yes)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for pid in proc.glob("[0-9]*"):
        try:
            if test(pid):
                return True
        except OSError:  # a process that ended, or one we may not look into
            continue
    return False
