"""The model registry in GTO's tag format, read and written through GTO's own library.

GTO's tags: `<artifact>@v<semver>` registers a version (pre-release and build metadata allowed),
`...@v<semver>!` deregisters it, `<artifact>@deprecated` deprecates the whole artifact,
`<artifact>#<stage>#<n>` assigns a stage and `<artifact>#<stage>!#<n>` unassigns it; an artifact
`dir:name` is spelled `dir=name` in tags. Parsing and writing them with GTO itself (a dependency of
dvc already) means `gto show`, `gto check-ref` and `dvc artifacts get --stage` always agree with mlcd.
Every GTO exception becomes a VersionError here, so the CLI prints one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mlcd.errors import VersionError
from mlcd.git import git, short

# `.gto` at the project root lists the stages `gto assign` and `mlcd promote` accept (GTO's own
# config file); each stage deploys to the CI environment of the same name.
GTO_CONFIG = ".gto"
DEFAULT_STAGES = ("staging", "production")
READ_FAILURE = "reading the registry"  # how a failed `gto show` starts its message

T = TypeVar("T")


@dataclass(frozen=True)
class RegisteredVersion:
    version: str  # as tagged: v1.2.0, v1.3.0-rc.1+build.5
    tag: str  # the registration tag
    commit: str
    created_at: str  # ISO 8601, the registration tag's date
    stages: tuple[str, ...]  # stages this version holds now
    registered: bool  # False once deregistered (listed only on request)


@dataclass(frozen=True)
class TagEvent:
    """What one GTO tag does: register, deregister, assign, unassign, deprecate."""

    tag: str
    action: str  # GTO's event name: registration, deregistration, assignment, unassignment, deprecation
    artifact: str
    commit: str
    version: str | None
    stage: str | None


@dataclass(frozen=True)
class SharedCommit:
    """Registration tags that put two or more versions on one commit, which GTO forbids."""

    commit: str
    tags: tuple[str, ...]  # oldest first

    def line(self) -> str:
        return f"{' and '.join(self.tags)} each register a version on commit {short(self.commit)}"


def shared_commits(root: Path, artifact: str) -> list[SharedCommit]:
    """Commits that more than one active registration tag of `artifact` points at (a tag moved by hand)."""
    from gto.constants import Action
    from gto.tag import parse_name

    fields = "%(refname:short)%09%(*objectname)%09%(objectname)"  # name, commit of an annotated tag, target
    listing = git(root, "for-each-ref", "--sort=creatordate", f"--format={fields}", "refs/tags")
    by_commit: dict[str, list[str]] = {}
    for line in listing.splitlines():
        name, peeled, direct = line.split("\t")
        parsed = parse_name(name, raise_on_fail=False)
        if parsed and parsed.get("action") == Action.REGISTER and parsed.get("name") == artifact:
            by_commit.setdefault(peeled or direct, []).append(name)
    return [SharedCommit(commit, tuple(tags)) for commit, tags in by_commit.items() if len(tags) > 1]


def shared_commit_fix(root: Path, artifact: str) -> list[str]:
    """What to delete so GTO can read the registry again: the newer tag of each shared commit."""
    lines = []
    for shared in shared_commits(root, artifact):
        newest = shared.tags[-1]
        stage_tags = [t for t in _tags(root) if t.startswith(f"{artifact}#")]
        on_it = [t for t in stage_tags if _points_at(root, t) == shared.commit]
        delete = " ".join([newest, *on_it])
        lines.append(
            f"{shared.line()}; GTO allows one: delete the one made by mistake (probably the newest) and any "
            f"stage tag on that commit: `git tag -d {delete}` (and `git push origin --delete {delete}` "
            "if they were pushed)"
        )
    return lines


def _points_at(root: Path, tag: str) -> str:
    return git(root, "rev-parse", f"{tag}^{{commit}}").strip()


def _tags(root: Path) -> set[str]:
    return set(git(root, "tag", "--list").split())


@contextmanager
def _gto_errors(doing: str, root: Path | None = None, artifact: str | None = None) -> Iterator[None]:
    from gto.exceptions import GTOException, ManyVersions

    try:
        yield
    except ManyVersions as exc:
        fix = shared_commit_fix(root, artifact) if root is not None and artifact else []
        raise VersionError(f"{doing}: {exc}", fix) from None
    except GTOException as exc:
        raise VersionError(f"{doing}: {exc}") from None


def _call(doing: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with _gto_errors(doing):
        return function(*args, **kwargs)


def stages(root: Path) -> tuple[str, ...]:
    """The stages `.gto` allows, or mlcd's defaults when the project has no `.gto`."""
    config = root / GTO_CONFIG
    if not config.exists():
        return DEFAULT_STAGES
    loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    listed = loaded.get("stages") if isinstance(loaded, dict) else None
    if not listed:
        return DEFAULT_STAGES
    return tuple(str(stage) for stage in listed)


def list_registered(root: Path, artifact: str, include_deregistered: bool = False) -> list[RegisteredVersion]:
    """Registered versions, highest first, each with its current stages: `gto show <artifact>`."""
    from gto import api
    from gto.exceptions import ArtifactNotFound

    with _gto_errors(READ_FAILURE, root, artifact):
        try:
            shown = api.show(str(root), artifact, deprecated=include_deregistered)
        except ArtifactNotFound:  # no tag names it yet
            return []
    return [_registered(row) for row in shown if row["registrations"]]


def _registered(row: dict[str, Any]) -> RegisteredVersion:
    registration = row["registrations"][0]
    return RegisteredVersion(
        version=row["version"],
        tag=registration["tag"],
        commit=row["commit_hexsha"],
        created_at=registration["created_at"].isoformat(),
        stages=tuple(stage["stage"] for stage in row["stages"]),
        registered=row["is_active"],
    )


def find_version(root: Path, artifact: str, version: str) -> RegisteredVersion | None:
    """The version (`1.2.0` or `v1.2.0`), deregistered ones included, or None."""
    wanted = version if version.startswith("v") else f"v{version}"
    for found in list_registered(root, artifact, include_deregistered=True):
        if found.version == wanted:
            return found
    return None


def holder(versions: list[RegisteredVersion], stage: str) -> RegisteredVersion | None:
    """Which of `versions` (as list_registered read them) holds `stage` now, if any."""
    return next((found for found in versions if stage in found.stages), None)


def in_stage(root: Path, artifact: str, stage: str) -> RegisteredVersion | None:
    """The version a stage holds now (the latest assignment not undone), as `gto show <artifact>#<stage>`."""
    return holder(list_registered(root, artifact), stage)


def tag_events(root: Path, tag: str) -> list[TagEvent]:
    """What a tag does in the registry (`gto check-ref`); empty for a tag that is not GTO's."""
    from gto import api

    events = _call(f"reading tag {tag!r}", api.check_ref, str(root), tag)
    return [
        TagEvent(
            tag=tag,
            action=event.event,
            artifact=event.artifact,
            commit=event.commit_hexsha,
            version=getattr(event, "version", None),
            stage=getattr(event, "stage", None),
        )
        for event in events
    ]


def is_gto_tag(name: str) -> bool:
    from gto.tag import parse_name

    return bool(parse_name(name, raise_on_fail=False))


def valid_version(text: str) -> str:
    """`1.2.0`, `v1.2.0`, `v1.3.0-rc.1+build.5` as GTO tags it (with a leading v), or a VersionError."""
    from gto.versions import SemVer

    version = text.strip()
    version = version if version.startswith("v") else f"v{version}"
    if not SemVer.is_valid(version):  # type: ignore[no-untyped-call]
        raise VersionError(
            f"{text!r} is not a version: use semantic versioning MAJOR.MINOR.PATCH, e.g. 1.4.0, "
            "optionally with a pre-release (1.4.0-rc.1) or build metadata (1.4.0+20261201); "
            "a leading v is fine"
        )
    return version


def version_key(version: str) -> Any:
    """A sort key in semantic-version order (pre-releases before their release)."""
    from gto.versions import SemVer

    return SemVer(version)


def _write_tag(root: Path, artifact: str, doing: str, function: Callable[..., Any], **kwargs: Any) -> str:
    """Call one of GTO's writers (it refuses what GTO's rules forbid); the tag it wrote.

    All or nothing: GTO writes its tag and then re-reads the registry, so a refusal can come after
    the tag exists (two versions on one commit). Any tag that appeared during a refused call is
    deleted again, so a failed register, promote or demote leaves the registry as it was.
    """
    before = _tags(root)
    try:
        with _gto_errors(doing, root, artifact):
            return str(function(str(root), **kwargs).tag)
    except VersionError:
        if written := sorted(_tags(root) - before):
            git(root, "tag", "--delete", *written)
        raise


def register(root: Path, artifact: str, version: str, commit: str, message: str) -> str:
    """Write the annotated registration tag on `commit`; the tag's name."""
    from gto import api

    doing = f"registering {artifact} {version}"
    return _write_tag(
        root, artifact, doing, api.register, name=artifact, ref=commit, version=version, message=message
    )


def assign(root: Path, artifact: str, version: str, stage: str, message: str) -> str:
    """Write the stage-assignment tag `<artifact>#<stage>#<n>`; its name."""
    from gto import api

    doing = f"assigning {stage} to {artifact} {version}"
    return _write_tag(
        root, artifact, doing, api.assign, name=artifact, stage=stage, version=version, message=message
    )


def unassign(root: Path, artifact: str, version: str, stage: str, message: str) -> str:
    """Write the unassignment tag `<artifact>#<stage>!#<n>`; its name."""
    from gto import api

    doing = f"taking {stage} from {artifact} {version}"
    return _write_tag(
        root, artifact, doing, api.unassign, name=artifact, version=version, stage=stage, message=message
    )


def shortcut(ref: str) -> Any:
    """GTO's reading of a shortcut (`<artifact>#<stage>`, `<artifact>@<version>`, `@latest`), as
    gto.constants.Shortcut; None when `ref` is none (a bare version, a stage, a commit) or names a
    stage GTO would refuse."""
    from gto.constants import parse_shortcut
    from gto.exceptions import ValidationError

    try:
        found = parse_shortcut(ref)  # type: ignore[no-untyped-call]
    except ValidationError:
        return None
    return found if found.shortcut else None
