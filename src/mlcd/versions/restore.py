"""Restore any registered (or committed) model: into the workspace, or into a directory.

Both modes fetch and md5-check every needed object first (versions/verified.py) and change
nothing if one is missing or damaged. Only then does the workspace mode move HEAD.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlcd.bundle import Manifest, verify_bundle
from mlcd.console import warn
from mlcd.dvcfiles import Artifact, model_artifact
from mlcd.errors import MlcdError, VersionError
from mlcd.files import atomic_dir
from mlcd.git import git, remove_stale_checkout_locks, require_clean, resolve_commit, short
from mlcd.versions import registry
from mlcd.versions.interrupted import IN_PROGRESS, Interrupted, interrupted, mark_in_progress
from mlcd.versions.verified import verify_objects


@dataclass(frozen=True)
class Restored:
    label: str
    commit: str
    bundle: Path
    manifest: Manifest
    from_remote: int  # objects that had to come from the remote
    repaired: list[str]  # damaged cache copies replaced by good ones
    moved_from: str | None = None  # the workspace mode's previous HEAD; None when HEAD stayed


@dataclass(frozen=True)
class Target:
    commit: str
    label: str  # what the messages call it: model@v1.2.0 (production), or a short commit


def resolve(root: Path, ref: str) -> Target:
    """A version (1.2.0, v1.2.0, v1.3.0-rc.1), a stage (production), a GTO tag, or any commit-ish.

    A registry GTO cannot read (a bad tag) never blocks a plain commit: only names that need the
    registry fail on it.
    """
    try:
        return _resolve(root, ref)
    except VersionError as exc:
        commit = None if registry.is_gto_tag(ref) else resolve_commit(root, ref)
        if commit is None or not exc.message.startswith(registry.READ_FAILURE):
            raise
        warn(f"{exc.message}; restoring commit {short(commit)} anyway, as it names no version")
        for line in exc.problems:
            warn(line)
        return Target(commit, short(commit))


def _resolve(root: Path, ref: str) -> Target:
    art = model_artifact(root)

    @functools.cache
    def active() -> list[registry.RegisteredVersion]:  # read the registry once, and only if needed
        return registry.list_registered(root, art.name)

    if registry.is_gto_tag(ref) and resolve_commit(root, f"refs/tags/{ref}"):
        events = registry.tag_events(root, ref)
        version = next((e.version for e in events if e.version and e.artifact == art.name), None)
        if version is not None:
            return _version_target(registry.find_version(root, art.name, version), art, version, via=ref)
    wanted = registry.shortcut(ref)  # GTO's own grammar: <artifact>#<stage>, <artifact>@<version|latest>
    if wanted is not None and wanted.name == art.name:
        if wanted.stage is not None:
            return _stage_target(active(), art, wanted.stage)
        if wanted.latest:
            if not active():
                raise VersionError(
                    f"{art.name} has no registered version yet: `mlcd release 0.1.0` makes one"
                )
            return _version_target(active()[0], art, active()[0].version, via=ref)
    # A bare version (1.4.0), or GTO's <artifact>@v<semver>, which GTO's grammar reads as a version too.
    text = wanted.version if wanted is not None and wanted.version else ref
    text = text.removeprefix(f"{art.name}@")
    try:
        version = registry.valid_version(text)
    except VersionError:
        version = None
    if version is not None and (found := registry.find_version(root, art.name, version)):
        return _version_target(found, art, version, via=ref)
    stages = list(dict.fromkeys([*registry.stages(root), *(s for v in active() for s in v.stages)]))
    if ref in stages:
        return _stage_target(active(), art, ref)
    commit = resolve_commit(root, ref)
    if commit is None:
        known = ", ".join(v.version for v in active()) or "none yet"
        raise VersionError(
            f"{ref!r} is not a version, a stage, a tag or a commit "
            f"(versions: {known}; stages: {', '.join(stages)})"
        )
    return Target(commit, short(commit))


def _version_target(
    found: registry.RegisteredVersion | None, art: Artifact, version: str, via: str
) -> Target:
    if found is None:
        raise VersionError(f"{via!r} names {art.name} {version}, which is not registered")
    if not found.registered:
        raise VersionError(
            f"{found.tag} was deregistered ({found.tag}! says so); restore its commit "
            f"{short(found.commit)} explicitly if you really need it: `mlcd restore {short(found.commit)}`"
        )
    stages = f" ({', '.join(found.stages)})" if found.stages else ""
    return Target(found.commit, f"{found.tag}{stages}")


def _stage_target(versions: list[registry.RegisteredVersion], art: Artifact, stage: str) -> Target:
    found = registry.holder(versions, stage)
    if found is None:
        raise VersionError(
            f"no version of {art.name} is in stage {stage!r}: assign one with `mlcd promote VERSION {stage}`"
        )
    return Target(found.commit, f"{found.tag} ({stage})")


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


def way_back(previous: str) -> str:
    return (
        f"HEAD was moved from {short(previous)}: go back with `git switch -` "
        f"(or `git checkout {short(previous)}`) then `dvc checkout`"
    )


def _checkout_outputs(root: Path) -> None:
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(root)) as repo:
        # relink: a workspace file checked out from a damaged cache copy looks up to date to DVC
        # (its state records the hash it was checked out as); every object is verified by now.
        repo.checkout(force=True, relink=True)


def _clear_killed_checkout(root: Path) -> bool:
    """Remove the lock files a `git checkout` killed with the restore left; whether there were any.

    Refuses while a live git holds one: a checkout then would move the files but not HEAD.
    """
    removed, held = remove_stale_checkout_locks(root)
    if held:
        raise VersionError(
            f"{_named(held)} {'is' if len(held) == 1 else 'are'} held by a running git process: let it "
            "finish (or stop it), then run this again; nothing was changed"
        )
    if removed:
        warn(f"removed {_named(removed)}, left by the git checkout the interrupted restore was running")
    return bool(removed)


def _named(locks: list[str]) -> str:
    return " and ".join(f".git/{name}" for name in locks)


def abort_restore(root: Path) -> Interrupted:
    """Put HEAD (on its branch) and the outputs back where an interrupted restore found them."""
    found = interrupted(root)
    if found is None:
        raise VersionError("no interrupted `mlcd restore` to abort: nothing was changed")
    _clear_killed_checkout(root)
    git(root, "checkout", "--quiet", "--force", found.branch or found.previous)
    _checkout_outputs(root)
    (root / IN_PROGRESS).unlink()
    return found


def restore_workspace(root: Path, ref: str) -> Restored:
    """`git checkout <commit>` then `dvc checkout`, once every object is verified.

    Restoring the commit HEAD is at (`mlcd restore HEAD`) repairs the outputs in place and leaves
    HEAD on its branch.
    """
    pending = interrupted(root)
    target = resolve(root, ref)
    if pending is not None and pending.target != target.commit:
        raise VersionError(pending.advice())
    if pending is not None and _clear_killed_checkout(root):  # the killed checkout is finished first
        git(root, "checkout", "--quiet", "--force", target.commit)
    if pending is None:
        _refuse_dirty(root)
    verified = verify_objects(root, target.commit, target.label, only=None)
    previous = git(root, "rev-parse", "HEAD").strip()
    moves = target.commit != previous
    if pending is None and moves:
        branch = git(root, "branch", "--show-current").strip() or None
        mark_in_progress(root, Interrupted(previous, branch, target.commit))
        git(root, "checkout", "--quiet", target.commit)
    origin = pending.previous if pending else previous
    try:
        _checkout_outputs(root)
        bundle = root / model_artifact(root).path
        manifest = verify_bundle(bundle)
    except MlcdError as exc:
        raise type(exc)(f"{exc.message} ({way_back(origin)})", exc.problems) from None
    except Exception as exc:  # dvc's own errors: still say where HEAD is
        raise VersionError(f"dvc checkout failed after HEAD moved: {exc} ({way_back(origin)})") from None
    (root / IN_PROGRESS).unlink(missing_ok=True)
    return Restored(
        target.label,
        target.commit,
        bundle,
        manifest,
        verified.fetched,
        verified.repaired,
        moved_from=origin if (moves or pending) else None,
    )


def restore_to(root: Path, ref: str, out: Path) -> Restored:
    """Write the version's bundle into `out`; the workspace and HEAD stay as they are."""
    if out.is_symlink():
        raise VersionError(f"--out {out} is a symbolic link: give a new or empty directory, not a link")
    if out.exists() and not out.is_dir():
        raise VersionError(f"--out {out} is an existing file: give a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        raise VersionError(f"--out {out} is not empty; choose a new directory so nothing is overwritten")
    target = resolve(root, ref)
    art = model_artifact(root)
    verified = verify_objects(root, target.commit, target.label, only=art.path)
    prefix = f"{art.path}/"
    with atomic_dir(out) as staging:
        for item in verified.objects:
            if item.path.startswith(prefix):
                destination = staging / item.path.removeprefix(prefix)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(verified.cache_paths[item.md5], destination)
        manifest = verify_bundle(staging)
    return Restored(target.label, target.commit, out, manifest, verified.fetched, verified.repaired)
