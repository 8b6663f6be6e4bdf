"""The release job: a `<artifact>@v<semver>` tag is only good if its outputs can be restored."""

from __future__ import annotations

import os
from pathlib import Path

from mlcd.ci.remote import configure_remote
from mlcd.git import git
from mlcd.versions.releases import parse_tag, require_pushed


def verify_release(root: Path, tag: str) -> tuple[str, int]:
    """(commit, number of outputs checked) once every cached output of the tag is in the remote."""
    parse_tag(root, tag)
    configure_remote(root, os.environ)
    commit = git(root, "rev-parse", f"{tag}^{{commit}}").strip()
    return commit, require_pushed(root, commit)
