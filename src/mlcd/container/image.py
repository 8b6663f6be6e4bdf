"""`mlcd image build` and `mlcd image smoke`: the steps CI and a developer run alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlcd.bundle import verify_bundle
from mlcd.container.podman import BuiltImage, build_image, ensure_local_bases, ensure_tools


def git_commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def default_tag(root: Path, bundle: Path) -> str:
    return f"localhost/mlcd-model:{verify_bundle(bundle)['model_hash'][:12]}"


def build(root: Path, tag: str | None, local_base: bool, base: str | None, runtime: str | None) -> BuiltImage:
    """Build the Dockerfile at `root` around its verified bundle, labelled with model hash and commit."""
    bundle = root / "models" / "bundle"
    manifest = verify_bundle(bundle)
    ensure_tools()
    if local_base:
        base, runtime = ensure_local_bases()
    build_args = {"MODEL_HASH": manifest["model_hash"], "GIT_COMMIT": git_commit(root)}
    return build_image(root, tag or default_tag(root, bundle), build_args, base=base, runtime=runtime)
