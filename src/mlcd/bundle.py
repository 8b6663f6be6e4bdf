"""Reading a model bundle safely: every file must match the sha256 its manifest records.

Used wherever a bundle is trusted (restore, serving); imports nothing from the
training stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlcd.errors import BundleError
from mlcd.files import sha256_file

MANIFEST = "manifest.json"


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} has no {MANIFEST}: it is not a model bundle (run `dvc repro package`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path} lists no files; rebuild the bundle with `dvc repro package`")
    return manifest


def verify_bundle(bundle: Path) -> dict[str, Any]:
    """Return the manifest if every listed file is present with its recorded sha256."""
    manifest = read_manifest(bundle)
    problems = []
    for name, expected in sorted(manifest["files"].items()):
        path = bundle / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{name}: sha256 {actual[:12]}..., manifest says {expected[:12]}...")
    if problems:
        raise BundleError(
            f"bundle {bundle} does not match its manifest; it was changed or damaged after "
            "packaging (restore it with `dvc checkout models/bundle` or rebuild it with "
            "`dvc repro package`):",
            problems,
        )
    return manifest


def answers_match(
    answer: dict[str, Any], examples: dict[str, Any], classes: list[str], tol: float = 1e-6
) -> bool:
    """Whether an API answer to the bundle's example records equals the answers stored beside them."""
    if "labels" in examples:
        if answer.get("labels") != examples["labels"]:
            return False
        try:
            got = [[row[c] for c in classes] for row in answer.get("probabilities", [])]
        except (KeyError, TypeError):  # not the API's {class: probability} rows
            return False
        want = examples["probabilities"]
    else:
        got, want = [answer.get("predictions", [])], [examples["predictions"]]
    if len(got) != len(want):
        return False
    return all(
        len(g) == len(w) and all(abs(a - b) <= tol * max(1.0, abs(b)) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )
