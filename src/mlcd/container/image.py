"""`mlcd image build` and `mlcd image smoke`: the steps CI and a developer run alike."""

from __future__ import annotations

from pathlib import Path

from mlcd.bundle import verify_bundle
from mlcd.config import ProjectPaths
from mlcd.container.podman import BuiltImage, build_image, ensure_local_bases, require_tools
from mlcd.errors import ContainerError
from mlcd.git import resolve_commit

# What podman says when it cannot fetch a base image (no registry reachable, offline, a proxy).
PULL_FAILURES = (
    "pinging container registry",
    "initializing source",
    "dial tcp",
    "no such host",
    "i/o timeout",
    "reading manifest",
    "unable to pull",
)


def default_tag(root: Path, bundle: Path) -> str:
    return f"localhost/mlcd-model:{verify_bundle(bundle).model_hash[:12]}"


def build(root: Path, tag: str | None, local_base: bool, base: str | None, runtime: str | None) -> BuiltImage:
    """Build the Dockerfile at `root` around its verified bundle, labelled with model hash and commit."""
    bundle = ProjectPaths(root).bundle
    manifest = verify_bundle(bundle)
    require_tools()
    if local_base:
        base, runtime = ensure_local_bases()
    build_args = {
        "MODEL_HASH": manifest.model_hash,
        "GIT_COMMIT": resolve_commit(root, "HEAD") or "unknown",
    }
    try:
        return build_image(root, tag or default_tag(root, bundle), build_args, base=base, runtime=runtime)
    except ContainerError as exc:
        if local_base or not any(words in exc.message.lower() for words in PULL_FAILURES):
            raise
        raise ContainerError(
            "podman could not pull a base image (no registry reachable from here?): build with "
            "`mlcd image build --local-base`, which makes Debian bases locally with mmdebstrap and needs "
            f"no registry, or name reachable ones with --base-image. podman said: {exc.message}"
        ) from None
