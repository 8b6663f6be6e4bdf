"""Releases: GTO registration tags (`<artifact>@v<semver>`) on reproduced, pushed commits, and the list.

The tags themselves are read and written by GTO's library (versions/registry.py); this module adds
what mlcd knows about each version: its model hash, metrics and whether its outputs were pushed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlcd.bundle import MANIFEST, Manifest
from mlcd.config import LOCK_FILE, ProjectPaths
from mlcd.dvcfiles import Artifact, lock_at, model_artifact
from mlcd.errors import VersionError
from mlcd.git import git, require_clean, short
from mlcd.versions import registry

METRICS_FILE = ProjectPaths().metrics.as_posix()


@dataclass
class VersionInfo:
    version: str | None
    tag: str | None
    commit: str
    date: str
    model_hash: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    registered: bool = True  # False: deregistered (`<artifact>@v<semver>!`), listed only with --all

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def metrics_at(root: Path, commit: str) -> dict[str, Any]:
    import dvc.api

    try:
        metrics: dict[str, Any] = dvc.api.metrics_show(METRICS_FILE, repo=str(root), rev=commit)
        return metrics
    except Exception:  # an old commit may predate metrics; the list shows none
        return {}


def model_hash_at(root: Path, commit: str, art: Artifact) -> str | None:
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(str(root), rev=commit)
        return Manifest.model_validate_json(fs.read_text(f"{art.path}/{MANIFEST}")).model_hash
    except Exception:  # not in the cache or the remote, or no bundle of ours: the table says so
        return None


def list_versions(root: Path, include_all: bool = False) -> list[VersionInfo]:
    """Registered versions, highest first, with stages, model hash and metrics.

    `include_all` adds deregistered versions and the untagged commits that changed dvc.lock.
    """
    art = model_artifact(root)
    found = registry.list_registered(root, art.name, include_deregistered=include_all)
    rows = [
        _info(root, art, v.commit, v.created_at, v.version, v.tag, list(v.stages), v.registered)
        for v in found
    ]
    if include_all:
        tagged = {v.commit for v in found}
        changed = set(git(root, "log", "--format=%H", "--", LOCK_FILE).split())
        listing = git(root, "log", "--topo-order", "--format=%H%x09%cI", "HEAD").splitlines()
        rows += [
            _info(root, art, commit, date, None, None, [], False)
            for commit, date in (line.split("\t") for line in listing)
            if commit in changed - tagged
        ]
    return rows


def shared_commit_warnings(root: Path) -> list[str]:
    """One line per commit that carries two versions (GTO refuses a stage on it), naming the fix."""
    return registry.shared_commit_fix(root, model_artifact(root).name)


def _info(
    root: Path,
    art: Artifact,
    commit: str,
    date: str,
    version: str | None,
    tag: str | None,
    stages: list[str],
    registered: bool,
) -> VersionInfo:
    return VersionInfo(
        version=version,
        tag=tag,
        commit=commit,
        date=date,
        model_hash=model_hash_at(root, commit, art),
        metrics=metrics_at(root, commit),
        stages=stages,
        registered=registered,
    )


def _stale_stages(root: Path) -> list[str]:
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(root)) as repo:
        return [f"{stage}: {changes}" for stage, changes in repo.status().items()]


def require_pushed(root: Path, commit: str, verify_data: bool = False) -> int:
    """Raise unless every cached output of `commit` is in the default remote; return how many objects.

    The bundle's objects are read back and md5-checked (a damaged copy would be deployed); every
    output's are with `verify_data`, which costs a download of the whole dataset.
    """
    from mlcd.versions.remote_check import require_good_remote

    return require_good_remote(root, commit, None if verify_data else {model_artifact(root).path})


def registration(root: Path, tag: str) -> registry.TagEvent:
    """The registration a tag makes, or an error saying the expected form."""
    art = model_artifact(root)
    events = [e for e in registry.tag_events(root, tag) if e.action == "registration"]
    if not events or events[0].artifact != art.name:
        raise VersionError(
            f"tag {tag!r} does not register a version of {art.name!r}: expected {art.name}@v<semver>"
        )
    return events[0]


def create_release(root: Path, version_text: str, verify_data: bool = False) -> VersionInfo:
    """Register HEAD as a version after checking it is clean, reproduced and pushed."""
    art = model_artifact(root)
    version = registry.valid_version(version_text)
    require_clean(root)
    head = git(root, "rev-parse", "HEAD").strip()
    existing = registry.list_registered(root, art.name, include_deregistered=True)
    for other in existing:
        if other.version == version:
            raise VersionError(
                f"{other.tag} already exists (commit {short(other.commit)}); pick a new version"
            )
    if existing:
        latest = max(existing, key=lambda v: registry.version_key(v.version))
        if registry.version_key(version) < registry.version_key(latest.version):
            raise VersionError(
                f"{version} is lower than the latest release {latest.tag}; versions only go up"
            )
    if stale := _stale_stages(root):
        raise VersionError(
            "dvc.lock does not match the workspace: run `dvc repro`, commit dvc.lock, then release:",
            stale,
        )
    require_pushed(root, head, verify_data)
    info = _info(root, art, head, "", version, None, [], True)
    info.tag = registry.register(root, art.name, version, head, release_message(art, info, root, head))
    info.date = git(
        root, "for-each-ref", "--format=%(creatordate:iso-strict)", f"refs/tags/{info.tag}"
    ).strip()
    return info


def bundle_md5(root: Path, commit: str, art: Artifact) -> str | None:
    """The bundle directory's DVC hash in the commit's dvc.lock."""
    lock = lock_at(root, commit)
    return None if lock is None else lock.output_md5(art.path)


def release_message(art: Artifact, info: VersionInfo, root: Path, commit: str) -> str:
    metrics = ", ".join(f"{k}={v}" for k, v in sorted(info.metrics.items()))
    return (
        f"Release {art.name} {info.version}\n\n"
        f"model_hash: {info.model_hash}\n"
        f"bundle: {art.path} (dvc md5 {bundle_md5(root, commit, art)})\n"
        f"metrics: {metrics}\n"
    )
