"""podman, driven as a subprocess: local base images, build, run, inspect."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.console import info, working
from mlcd.errors import ContainerError
from mlcd.system import require_programs

# {program: Debian package} for building images; running one needs only podman and runc.
TOOLS = {"podman": "podman", "buildah": "buildah", "runc": "runc", "mmdebstrap": "mmdebstrap"}
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_SLIM = [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("man", "doc", "locale", "info")]
# mmdebstrap recipes for local stand-ins of the Dockerfile's default base, for hosts
# that reach no registry. The runtime one carries only Python and libstdc++ (numpy and
# onnxruntime need it), with merged-usr done by hook: the usrmerge package drags in perl.
BASE_RECIPES = {
    "build": ["--variant=apt", "--include=python3,python3-venv,python3-pip,ca-certificates", *_SLIM],
    "runtime": [
        "--variant=essential",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--include=python3-minimal,libpython3.11-stdlib,libstdc++6",
        *_SLIM,
    ],
}


def base_image_name(kind: str) -> str:
    """Tagged by a hash of the recipe, so changing a recipe builds a new base."""
    digest = hashlib.sha256(" ".join(BASE_RECIPES[kind]).encode()).hexdigest()[:10]
    return f"localhost/mlcd-python-{kind}:bookworm-{digest}"


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    env.setdefault("BUILDAH_FORMAT", "docker")  # keeps HEALTHCHECK, which OCI format drops
    return env


def podman(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    (path,) = require_programs({"podman": "podman"}, "running containers").values()
    done = subprocess.run([path, *args], env=environment(), capture_output=capture, text=True)
    if check and done.returncode != 0:
        raise ContainerError(f"podman {' '.join(args[:3])} ... failed: {(done.stderr or '').strip()[-2000:]}")
    return done


def require_tools() -> None:
    """podman, buildah, runc and mmdebstrap, or one error naming the packages to install."""
    require_programs(TOOLS, "building an image")


def remove_container(name: str, grace_seconds: int = 10, check: bool = False) -> None:
    """Stop (SIGTERM, then SIGKILL after the grace period) and remove `name`; absent is fine."""
    podman("rm", "--force", "--ignore", "--time", str(grace_seconds), name, check=check)


def start_container(name: str, image: str, port: int, *options: str) -> None:
    """Replace any container called `name` with a detached one of `image`, its 8080 on 127.0.0.1:`port`."""
    remove_container(name, check=True)
    podman("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8080", *options, image)


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def ensure_local_bases() -> tuple[str, str]:
    """Debian bookworm Python images made with mmdebstrap, built once and cached by podman."""
    for kind, recipe in BASE_RECIPES.items():
        name = base_image_name(kind)
        if image_exists(name):
            continue
        with working(f"building local base image {name} with mmdebstrap (about 30 s)"):
            debootstrap = subprocess.Popen(
                ["mmdebstrap", "--quiet", *recipe, "bookworm", "-"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            imported = subprocess.run(
                ["podman", "import", "--quiet", "-", name],
                stdin=debootstrap.stdout,
                capture_output=True,
                text=True,
                env=environment(),
            )
            _, errors = debootstrap.communicate()
            if debootstrap.returncode or imported.returncode:
                raise ContainerError(f"could not build {name}: {errors.decode()[-1500:]}{imported.stderr}")
        info(f"built {name}")
    return base_image_name("build"), base_image_name("runtime")


@dataclass(frozen=True)
class BuiltImage:
    name: str
    size_bytes: int
    labels: dict[str, str]
    user: str
    healthcheck: dict[str, Any] | None


def inspect_image(name: str) -> BuiltImage:
    data = json.loads(podman("image", "inspect", name).stdout)[0]
    config = data.get("Config") or {}
    return BuiltImage(
        name=name,
        size_bytes=int(data["Size"]),
        labels=data.get("Labels") or config.get("Labels") or {},
        user=config.get("User", ""),
        healthcheck=data.get("Healthcheck") or config.get("Healthcheck"),
    )


def provenance_flags(model_hash: str, git_commit: str) -> list[str]:
    """Labels and env set at commit time. buildah 1.28 (Debian bookworm) reuses cached LABEL and ENV
    layers whatever the build-arg values, so ARG-based ones would carry an earlier build's commit."""
    return [
        "--label", f"org.opencontainers.image.revision={git_commit}",
        "--label", f"io.mlcd.model-hash={model_hash}",
        "--env", f"MLCD_GIT_COMMIT={git_commit}",
    ]  # fmt: skip


def build_image(
    context: Path,
    tag: str,
    build_args: dict[str, str],
    *,
    base: str | None = None,
    runtime: str | None = None,
) -> BuiltImage:
    args = ["build", "--format", "docker", "--tag", tag, "--file", str(context / "Dockerfile")]
    if HOST_CA_BUNDLE.is_file():
        # pip in the build stage trusts the host's CAs; the bundle is mounted, never copied in.
        args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    if base:
        build_args = {**build_args, "BASE_IMAGE": base, "RUNTIME_IMAGE": runtime or base}
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    args += provenance_flags(build_args.get("MODEL_HASH", "unknown"), build_args.get("GIT_COMMIT", "unknown"))
    with working(f"building {tag}"):
        podman(*args, str(context))
    return inspect_image(tag)
