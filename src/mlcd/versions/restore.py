"""Restore any released (or committed) model: into the workspace, or into a directory.

Both modes first check that every needed object is in the local cache or the
remote, and change nothing if one is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.bundle import verify_bundle
from mlcd.errors import VersionError
from mlcd.git import git, require_clean, resolve_commit, short
from mlcd.versions.releases import artifact, release_tags
from mlcd.versions.semver import Semver
from mlcd.versions.storage import ObjectStores, StoredObject, copy_out, missing_lines, outputs_at


@dataclass(frozen=True)
class Restored:
    label: str
    commit: str
    bundle: Path
    manifest: dict[str, Any]
    from_remote: int  # objects that had to come from the remote


def resolve(root: Path, ref: str) -> tuple[str, str]:
    """(commit, label) for a version (1.2.0, v1.2.0), a release tag, or any commit-ish."""
    art = artifact(root)
    try:
        wanted = Semver.parse(ref.removeprefix(f"{art.name}@"))
    except VersionError:
        wanted = None
    if wanted is not None:
        for version, tag, commit, _ in release_tags(root, art):
            if version == wanted:
                return commit, tag
    resolved = resolve_commit(root, ref)
    if resolved is None:
        known = ", ".join(str(v) for v, *_ in release_tags(root, art)) or "none yet"
        raise VersionError(f"{ref!r} is neither a release nor a commit (releases: {known})")
    return resolved, short(resolved)


def check_available(root: Path, commit: str, label: str, only: str | None) -> list[StoredObject]:
    """Every object the restore needs, or a VersionError naming each missing one."""
    stores = ObjectStores(root)
    try:
        objects = stores.objects(outputs_at(root, commit, only))
        remote = stores.describe_remote()
    finally:
        stores.close()
    missing = [o for o in objects if not (o.in_cache or o.in_remote)]
    if missing:
        raise VersionError(
            f"cannot restore {label} (commit {short(commit)}): {len(missing)} file(s) are in neither "
            f"the local cache nor {remote}. Nothing was changed. Fix: run `dvc push` from a clone "
            f"that has them, or rebuild them with `git checkout {short(commit)} && dvc repro "
            "&& dvc push`. Missing:",
            missing_lines(root, missing),
        )
    return objects


def _refuse_dirty(root: Path) -> None:
    require_clean(root)
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(root)) as repo:
        modified = [
            f"{path} (modified since dvc.lock)"
            for changes in repo.status().values()
            for change in changes
            if isinstance(change, dict)
            for path, state in change.get("changed outs", {}).items()
            if state == "modified"
        ]
    if modified:
        raise VersionError(
            "pipeline outputs differ from dvc.lock and would be overwritten; "
            "`dvc commit` or `dvc repro` them first:",
            modified,
        )


def restore_workspace(root: Path, ref: str) -> Restored:
    """`git checkout <commit>` then `dvc checkout`, as one safe step."""
    commit, label = resolve(root, ref)
    _refuse_dirty(root)
    objects = check_available(root, commit, label, only=None)
    git(root, "checkout", "--quiet", commit)
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(root)) as repo:
        if any(not o.in_cache for o in objects):
            repo.fetch()
        repo.checkout(force=True)
    bundle = root / artifact(root).path
    manifest = verify_bundle(bundle)
    return Restored(label, commit, bundle, manifest, sum(not o.in_cache for o in objects))


def restore_to(root: Path, ref: str, out: Path) -> Restored:
    """Write the version's bundle into `out`; the workspace and HEAD stay as they are."""
    commit, label = resolve(root, ref)
    if out.exists() and any(out.iterdir()):
        raise VersionError(f"{out} is not empty; choose a new directory so nothing is overwritten")
    art = artifact(root)
    objects = check_available(root, commit, label, only=art.path)
    from dvc.api import DVCFileSystem

    out.mkdir(parents=True, exist_ok=True)
    copy_out(DVCFileSystem(str(root), rev=commit), art.path, out)
    manifest = verify_bundle(out)
    return Restored(label, commit, out, manifest, sum(not o.in_cache for o in objects))
