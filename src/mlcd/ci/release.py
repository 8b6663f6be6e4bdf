"""The release job: a `<artifact>@v<semver>` tag is only good if its outputs can be restored."""

from __future__ import annotations

import os
from pathlib import Path

from mlcd.ci.remote import configure_remote
from mlcd.versions.releases import registration, require_pushed


def verify_release(root: Path, tag: str) -> tuple[str, int]:
    """(commit, number of outputs checked) once every cached output of the tag is in the remote."""
    commit = registration(root, tag).commit
    configure_remote(root, os.environ)
    return commit, require_pushed(root, commit)
