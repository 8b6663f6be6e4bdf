"""What the CI tests drive: gitlab-ci-local, npm-groovy-lint and Vega's scripts (npm, pinned in
.ci/tools), rsync, docker-registry, Chromium and a Java runtime for npm-groovy-lint (apt)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..helpers import PROJECT_ROOT
from ..system import apt_install, machine_lock

TOOLS_DIR = PROJECT_ROOT / ".ci" / "tools"
GITLAB_CI_LOCAL = TOOLS_DIR / "node_modules" / ".bin" / "gitlab-ci-local"
GROOVY_LINT = TOOLS_DIR / "node_modules" / ".bin" / "npm-groovy-lint"
# The scripts the page of `dvc plots show` loads from a CDN, at the same versions (dvc_render's SCRIPTS).
VEGA_SCRIPTS = {
    "vega@5.20.2": TOOLS_DIR / "node_modules" / "vega" / "build" / "vega.min.js",
    "vega-lite@5.2.0": TOOLS_DIR / "node_modules" / "vega-lite" / "build" / "vega-lite.min.js",
    "vega-embed@6.18.2": TOOLS_DIR / "node_modules" / "vega-embed" / "build" / "vega-embed.min.js",
}


def _run(args: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def gitlab_ci_local() -> Path:
    """gitlab-ci-local 4.73 (the last on Node 20) from .ci/tools/package-lock.json, plus rsync it needs."""
    apt_install("rsync", programs=("rsync",))
    _npm_tools()
    return GITLAB_CI_LOCAL


def npm_groovy_lint() -> Path:
    """npm-groovy-lint 16.2 (the last on Node 20), with Debian's Java, which its CodeNarc needs."""
    apt_install("default-jre-headless", programs=("java",))
    _npm_tools()
    return GROOVY_LINT


def vega_scripts() -> dict[str, Path]:
    """{the CDN name `dvc plots show` writes: the same file installed from npm}."""
    _npm_tools()
    return VEGA_SCRIPTS


def chromium() -> Path:
    apt_install("chromium", programs=("chromium",))
    return Path(shutil.which("chromium") or "/usr/bin/chromium")


def _npm_tools() -> None:
    installed = [GITLAB_CI_LOCAL, GROOVY_LINT, *VEGA_SCRIPTS.values()]
    if all(path.exists() for path in installed):
        return
    apt_install("nodejs", "npm", programs=("node", "npm"))
    with machine_lock("npm"):
        if not all(path.exists() for path in installed):
            _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TOOLS_DIR)


def docker_registry() -> Path:
    apt_install("docker-registry", programs=("docker-registry",))
    return Path(shutil.which("docker-registry") or "/usr/bin/docker-registry")
