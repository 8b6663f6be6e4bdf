"""The release job: a registration tag (`<artifact>@v<semver>`) is only good if its outputs can be
restored; its GitLab Release describes the model (hash, bundle, metrics) in Markdown."""

from __future__ import annotations

import os
from pathlib import Path

from mlcd.ci.remote import configure_remote
from mlcd.dvcfiles import model_artifact
from mlcd.versions.registry import TagEvent
from mlcd.versions.releases import (
    bundle_md5,
    metrics_at,
    model_hash_at,
    registration,
    require_pushed,
)


def verify_release(root: Path, tag: str, verify_data: bool = False) -> tuple[TagEvent, int]:
    """(the registration, number of objects checked) once every cached output of the tag is in the remote,
    the bundle's (every output's with `verify_data`) with the right md5."""
    event = registration(root, tag)
    configure_remote(root, os.environ)
    return event, require_pushed(root, event.commit, verify_data)


def release_notes(root: Path, event: TagEvent) -> str:
    """The GitLab Release description: what `mlcd versions` knows of this version, as Markdown."""
    tag = event.tag
    art = model_artifact(root)
    metrics = metrics_at(root, event.commit)
    rows = "\n".join(
        f"| {name} | {value:.6g} |"
        for name, value in sorted(metrics.items())
        if isinstance(value, int | float)
    )
    model_hash = model_hash_at(root, event.commit, art)
    return (
        f"Model **{art.name} {event.version}**, registered by `{tag}` on commit `{event.commit}`.\n\n"
        f"| | |\n|---|---|\n"
        f"| Model hash (sha256 of model.onnx, what `/ready` reports) | `{model_hash}` |\n"
        f"| Bundle `{art.path}` (DVC md5 in dvc.lock) | `{bundle_md5(root, event.commit, art)}` |\n\n"
        f"### Test metrics\n\n| metric | value |\n|---|---|\n{rows or '| (none recorded) | |'}\n\n"
        f"Get it back: `mlcd restore {event.version}` (or `--out DIR` for the bundle alone), or "
        f"`dvc artifacts get <this repository's URL> {art.name} --rev {tag}`. Deploy it: "
        f"`mlcd promote {event.version} <stage>`.\n"
    )
