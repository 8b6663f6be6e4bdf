"""Release tags in GTO's format (`<artifact>@v<semver>`) and the version list."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlcd.bundle import MANIFEST
from mlcd.config import LOCK_FILE, ProjectPaths
from mlcd.errors import VersionError
from mlcd.git import git, require_clean, short, show_file
from mlcd.versions.semver import Semver
from mlcd.versions.storage import ObjectStores, outputs_at

METRICS_FILE = ProjectPaths().metrics.as_posix()


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str


@dataclass
class VersionInfo:
    version: str | None
    tag: str | None
    commit: str
    date: str
    model_hash: str | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def artifact(root: Path) -> Artifact:
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    artifacts = pipeline.get("artifacts") or {}
    models = [(name, spec) for name, spec in artifacts.items() if spec.get("type") == "model"]
    if len(models) != 1:
        raise VersionError("dvc.yaml must declare exactly one artifact of type model under `artifacts:`")
    name, spec = models[0]
    return Artifact(name, spec["path"])


def tag_name(art: Artifact, version: Semver) -> str:
    return f"{art.name}@{version}"


def release_tags(root: Path, art: Artifact) -> list[tuple[Semver, str, str, str]]:
    """(version, tag, commit, date) for every well-formed release tag, newest version first."""
    listing = git(
        root,
        "for-each-ref",
        "--format=%(refname:strip=2)%09%(*objectname)%09%(objectname)%09%(creatordate:iso-strict)",
        f"refs/tags/{art.name}@v*",
    )
    found = []
    for line in listing.splitlines():
        tag, peeled, target, date = line.split("\t")
        try:
            version = Semver.parse(tag.removeprefix(f"{art.name}@"))
        except VersionError:
            continue  # not one of ours; GTO also ignores malformed tags
        found.append((version, tag, peeled or target, date))
    return sorted(found, reverse=True)


def metrics_at(root: Path, commit: str) -> dict[str, Any]:
    import dvc.api

    try:
        return dvc.api.metrics_show(METRICS_FILE, repo=str(root), rev=commit)
    except Exception:  # an old commit may predate metrics; the list shows none
        return {}


def model_hash_at(root: Path, commit: str, art: Artifact) -> str | None:
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(str(root), rev=commit)
        manifest = json.loads(fs.read_text(f"{art.path}/{MANIFEST}"))
    except Exception:  # not in the cache or the remote: the table says so
        return None
    return manifest.get("model_hash")


def list_versions(root: Path, include_all: bool = False) -> list[VersionInfo]:
    art = artifact(root)
    tags = release_tags(root, art)
    by_commit: dict[str, tuple[Semver, str, str]] = {}
    for release, release_tag, commit, date in tags:
        by_commit.setdefault(commit, (release, release_tag, date))
    if include_all:
        changed = set(git(root, "log", "--format=%H", "--", LOCK_FILE).split())
        tagged = {commit for _, _, commit, _ in tags}
        # Newest first over HEAD and every tag, so a release that left dvc.lock as it was keeps its place.
        listing = git(root, "log", "--topo-order", "--format=%H%x09%cI", "HEAD", "--tags").splitlines()
        commits = [(c, d) for c, d in (line.split("\t") for line in listing) if c in changed | tagged]
    else:
        commits = [(commit, date) for _, _, commit, date in tags]
    rows = []
    for commit, date in commits:
        version: Semver | None = None
        tag: str | None = None
        tag_date = date
        if found := by_commit.get(commit):
            version, tag, tag_date = found
        rows.append(
            VersionInfo(
                version=str(version) if version else None,
                tag=tag,
                commit=commit,
                date=tag_date,
                model_hash=model_hash_at(root, commit, art),
                metrics=metrics_at(root, commit),
            )
        )
    return rows


def _stale_stages(root: Path) -> list[str]:
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(root)) as repo:
        return [f"{stage}: {changes}" for stage, changes in repo.status().items()]


def require_pushed(root: Path, commit: str) -> int:
    """Raise unless every cached output of `commit` is in the default remote; return how many there are."""
    stores = ObjectStores(root)
    try:
        objects = stores.objects(outputs_at(root, commit))
        remote = stores.describe_remote()
    finally:
        stores.close()
    if unpushed := [o for o in objects if not o.in_remote]:
        raise VersionError(
            f"{len(unpushed)} outputs of commit {short(commit)} are not in {remote}; run `dvc push` first:",
            [f"{o.path} (md5 {o.md5})" for o in unpushed],
        )
    return len(objects)


def parse_tag(root: Path, tag: str) -> tuple[Artifact, Semver]:
    """The artifact and version a release tag names; an error says the expected form."""
    art = artifact(root)
    name, _, version = tag.partition("@")
    if name != art.name or not version.startswith("v"):
        raise VersionError(f"tag {tag!r} is not a release of {art.name!r}: expected {art.name}@v<semver>")
    return art, Semver.parse(version)


def create_release(root: Path, version_text: str) -> VersionInfo:
    """Tag HEAD as a release after checking it is clean, reproduced and pushed."""
    art = artifact(root)
    version = Semver.parse(version_text)
    tag = tag_name(art, version)
    require_clean(root)
    head = git(root, "rev-parse", "HEAD").strip()
    existing = release_tags(root, art)
    for other, other_tag, commit, _ in existing:
        if other == version:
            raise VersionError(f"{other_tag} already exists (commit {short(commit)}); pick a new version")
    if existing and version < existing[0][0]:
        latest = existing[0]
        raise VersionError(f"{version} is lower than the latest release {latest[1]}; versions only go up")
    if stale := _stale_stages(root):
        raise VersionError(
            "dvc.lock does not match the workspace: run `dvc repro`, commit dvc.lock, then release:",
            stale,
        )
    require_pushed(root, head)
    info = VersionInfo(
        version=str(version),
        tag=tag,
        commit=head,
        date="",
        model_hash=model_hash_at(root, head, art),
        metrics=metrics_at(root, head),
    )
    git(root, "tag", "-a", tag, "-m", release_message(art, info, root, head))
    info.date = git(root, "for-each-ref", "--format=%(creatordate:iso-strict)", f"refs/tags/{tag}").strip()
    return info


def release_message(art: Artifact, info: VersionInfo, root: Path, commit: str) -> str:
    lock = yaml.safe_load(show_file(root, commit, LOCK_FILE) or "{}")
    bundle_md5 = next(
        (
            o["md5"]
            for s in lock.get("stages", {}).values()
            for o in s.get("outs", [])
            if o["path"] == art.path
        ),
        None,
    )
    metrics = ", ".join(f"{k}={v}" for k, v in sorted(info.metrics.items()))
    return (
        f"Release {art.name} {info.version}\n\n"
        f"model_hash: {info.model_hash}\n"
        f"bundle: {art.path} (dvc md5 {bundle_md5})\n"
        f"metrics: {metrics}\n"
    )
