"""Promotion: give a registered version a stage (GTO's `<artifact>#<stage>#<n>` tag), or take it back.

A stage tag makes CI deploy that version's image to the environment named like the stage, so
promotion first checks everything that deploy will need: the version exists and is not
deregistered, its outputs are in the DVC remote (the deploy restores its bundle from there),
and its image was built and pushed (`<image repo>:<commit>`, by the registration's pipeline).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlcd.ci_variables import IMAGE_REPO_VARIABLE
from mlcd.dvcfiles import model_artifact
from mlcd.errors import VersionError
from mlcd.git import short
from mlcd.versions import registry
from mlcd.versions.releases import require_pushed


@dataclass(frozen=True)
class Promotion:
    tag: str
    version: str
    stage: str
    commit: str
    image: str | None  # None when the image check was skipped
    holder: str | None  # the registration tag of the version the stage holds now (GTO's view), if any
    already: bool = False  # the version held the stage before: nothing was written


def image_for(image_repo: str, commit: str) -> str:
    """Where CI pushes the image of `commit` (build job: $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA)."""
    return f"{image_repo}:{commit}"


def promote(
    root: Path,
    version_text: str,
    stage: str,
    image_repo: str | None,
    check_image: bool = True,
    verify_data: bool = False,
) -> Promotion:
    """Write the stage tag once every check passed; a refused write leaves no tag behind (registry.py)."""
    art = model_artifact(root)
    allowed = registry.stages(root)
    if stage not in allowed:
        raise VersionError(
            f"{stage!r} is not a stage of this project: use one of {', '.join(allowed)} "
            f"(the `stages:` list in {registry.GTO_CONFIG})"
        )
    found = _registered(root, art.name, version_text)
    if stage in found.stages:  # promoting again is not an error: the outcome the caller wants holds
        return Promotion("", found.version, stage, found.commit, None, found.tag, already=True)
    if any(shared.commit == found.commit for shared in registry.shared_commits(root, art.name)):
        raise VersionError(
            f"cannot promote {found.tag}: its commit carries another version too, and a stage tag on it "
            "would make GTO refuse every later read of the registry",
            registry.shared_commit_fix(root, art.name),
        )
    require_pushed(root, found.commit, verify_data)
    image = None
    if check_image:
        if not image_repo:
            raise VersionError(
                f"promote checks that the image of commit {short(found.commit)} was pushed: set "
                f"{IMAGE_REPO_VARIABLE} (e.g. registry.example.com/group/mlcd) or pass --image-repo; "
                "--no-image-check skips the check"
            )
        from mlcd.container.registry_api import image_exists

        image = image_for(image_repo, found.commit)
        if not image_exists(image, os.environ):
            raise VersionError(
                f"image {image} is not in the registry: the pipeline of {found.tag} builds and pushes it; "
                "wait for it (or re-run its build job) before promoting"
            )
    message = f"Promote {art.name} {found.version} to {stage}" + (f" (image {image})" if image else "")
    tag = registry.assign(root, art.name, found.version, stage, message)
    return Promotion(tag, found.version, stage, found.commit, image, holder=found.tag)


def demote(root: Path, version_text: str, stage: str) -> Promotion:
    """Take `stage` from the version (GTO's unassignment tag); CI deploys nothing for it."""
    art = model_artifact(root)
    found = _registered(root, art.name, version_text, allow_deregistered=True)
    if stage not in found.stages:
        other = registry.in_stage(root, art.name, stage)
        held = f"{other.tag} holds it" if other else "no version holds it"
        raise VersionError(f"{found.tag} is not in {stage} ({held}); nothing to demote")
    tag = registry.unassign(
        root, art.name, found.version, stage, f"Demote {art.name} {found.version} from {stage}"
    )
    current = registry.in_stage(root, art.name, stage)  # GTO: the stage falls back to an earlier holder
    return Promotion(tag, found.version, stage, found.commit, None, holder=current.tag if current else None)


def _registered(
    root: Path, name: str, version_text: str, allow_deregistered: bool = False
) -> registry.RegisteredVersion:
    version = registry.valid_version(version_text)
    found = registry.find_version(root, name, version)
    if found is None:
        known = ", ".join(v.version for v in registry.list_registered(root, name)) or "none yet"
        raise VersionError(f"{name} {version} is not registered (versions: {known})")
    if not found.registered and not allow_deregistered:
        raise VersionError(f"{found.tag} was deregistered: register a new version instead of promoting it")
    return found
