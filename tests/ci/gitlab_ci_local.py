"""Runs the project's real .gitlab-ci.yml with gitlab-ci-local, as shell jobs on this machine.

GitLab runs the Python jobs in $PYTHON_IMAGE and build in $BUILDAH_IMAGE; here
there is no container executor for jobs, so the expanded file (`--preview`:
extends, anchors and !reference resolved) is written with `image:` and
`services:` removed, and run with `--shell-isolation` (each job in its own copy
of the repository, artifacts passed as GitLab does).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..helpers import Repo, command_env, run

STATE_DIR = ".gitlab-ci-local"
SHELL_FILE = f"{STATE_DIR}/shell-gitlab-ci.yml"
PREDEFINED_OVERRIDES = ("CI_PIPELINE_SOURCE", "CI_COMMIT_BRANCH", "CI_SERVER_URL", "CI_PROJECT_ID")
# The summary gitlab-ci-local ends with, per job: " PASS  [   58 s] check 54% coverage".
_RESULT = re.compile(r"^\s*(PASS|FAIL|WARN)\s+\[\s*([^\]]+?)\s*\]\s+(\S+).*$", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shared_uv_cache() -> dict[str, str]:
    """Variables that point jobs at this machine's uv cache, instead of GitLab's per-job cache archive.

    Each job here gets a fresh .venv (hardlinked from the cache); compiling its bytecode would cost
    a minute per job, more than the few processes a job starts would save (.ci/setup)."""
    cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    return {"UV_CACHE_DIR": cache, "UV_LINK_MODE": "hardlink", "UV_COMPILE_BYTECODE": "0"}


def shared_bytecode(folder: Path) -> dict[str, str]:
    """Jobs write the bytecode they compile under `folder`, by source path (PYTHONPYCACHEPREFIX).

    A job's .venv is made afresh each run, of files hardlinked from the uv cache (the same mtimes
    each time); at the same path (the `developer` fixture) a later run's imports find the bytecode
    an earlier one compiled, instead of compiling scikit-learn, scipy and dvc again (about 10 s a job).
    """
    return {"PYTHONPYCACHEPREFIX": str(folder)}


def publish(repo: Repo, origin: Path) -> None:
    """Make a bare `origin` holding repo's main, as the clone GitLab's runner would fetch from."""
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], origin.parent)
    repo.run("git", "remote", "add", "origin", str(origin))
    repo.run("git", "push", "-q", "-u", "origin", "main")
    repo.run("git", "remote", "set-head", "origin", "main")


def open_merge_request(repo: Repo, branch: str, **params: object) -> None:
    """A developer's branch: params changed, `dvc repro` run, lock committed, outputs pushed."""
    repo.run("git", "checkout", "-q", "-b", branch)
    repo.set_params(**params)
    repo.dvc("repro")
    repo.commit(f"{branch}: {params}")
    repo.dvc("push", "--run-cache")
    repo.run("git", "push", "-q", "origin", branch)


def merge_request(iid: int = 3, target: str = "main") -> dict[str, str]:
    return {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": str(iid),
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": target,
    }


@dataclass
class PipelineRun:
    returncode: int
    output: str
    results: dict[str, str]  # job -> PASS / FAIL / WARN
    durations: dict[str, str]  # job -> as gitlab-ci-local prints it, e.g. "1 min 3 s"
    logs: dict[str, str] = field(default_factory=dict)

    def log(self, job: str) -> str:
        return self.logs.get(job, "")

    def explain(self) -> str:
        return f"gitlab-ci-local exited {self.returncode}; results {self.results}\n{self.output[-6000:]}"


@dataclass
class GitlabCiLocal:
    binary: Path
    project: Path  # a git clone with an `origin` remote
    variables: dict[str, str] = field(default_factory=dict)  # for every run

    def _command(self, *args: str, variables: dict[str, str], unset: tuple[str, ...]) -> list[str]:
        command = [str(self.binary), "--no-color", "--max-job-name-padding", "0"]
        for name, value in {**self.variables, **variables}.items():
            command += ["--variable", f"{name}={value}"]
        for name in unset:
            command += ["--unset-variable", name]
        # Overriding predefined variables is how a merge-request or tag pipeline is simulated here.
        command += ["--ignore-predefined-vars", ",".join(PREDEFINED_OVERRIDES)]
        return [*command, *args]

    def list_jobs(self, variables: dict[str, str], unset: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        """{job: {stage, when, allow_failure, needs}}; rules that say never show as when=never."""
        done = subprocess.run(
            self._command("--list-json", variables=variables, unset=unset),
            capture_output=True,
            text=True,
            env=command_env(),
            cwd=self.project,
            check=True,
        )
        return {job["name"]: job for job in json.loads(done.stdout)}

    def preview(self) -> dict[str, Any]:
        """The CI file as GitLab reads it: extends, anchors and !reference resolved."""
        done = subprocess.run(
            self._command("--preview", variables={}, unset=()),
            capture_output=True,
            text=True,
            env=command_env(),
            cwd=self.project,
            check=True,
        )
        expanded: dict[str, Any] = yaml.safe_load(done.stdout)
        return expanded

    def write_shell_file(self) -> Path:
        expanded = self.preview()
        for value in expanded.values():
            if isinstance(value, dict) and "script" in value:
                value.pop("image", None)
                value.pop("services", None)
        expanded.pop("default", None)
        path = self.project / SHELL_FILE
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(expanded, sort_keys=False))
        return path

    def run(
        self, *jobs: str, variables: dict[str, str] | None = None, unset: tuple[str, ...] = ()
    ) -> PipelineRun:
        """Run the named jobs (in needs order) or, with none named, the whole pipeline."""
        self.write_shell_file()
        command = self._command(
            "--file",
            SHELL_FILE,
            "--shell-isolation",
            "--no-artifacts-to-source",
            "--timestamps",
            *jobs,
            variables=variables or {},
            unset=unset,
        )
        done = subprocess.run(
            command, capture_output=True, text=True, env=command_env(), cwd=self.project, timeout=1800
        )
        output = _ANSI.sub("", done.stdout + done.stderr)
        found = _RESULT.findall(output)
        results = {job: result for result, _, job in found}
        durations = {job: duration for _, duration, job in found}
        logs = {}
        for job in results:
            log = self.project / STATE_DIR / "output" / f"{job}.log"
            if log.exists():
                logs[job] = _ANSI.sub("", log.read_text(errors="replace"))
        return PipelineRun(done.returncode, output, results, durations, logs)


def image_variables(
    registry: Any, remote: Path, port: int, state: Path, path: str = "group/mlcd"
) -> dict[str, str]:
    """What the build and deploy jobs need on this machine: the loopback registry, local base images,
    the host's CAs for pip, and the podman deploy backend on `port` with its state under `state`."""
    from mlcd.container.podman import CONTAINERS_CONF, ensure_local_bases

    base, runtime = ensure_local_bases()
    return {
        "DVC_REMOTE_URL": str(remote),
        "CI_REGISTRY": registry.address,
        "CI_REGISTRY_IMAGE": f"{registry.address}/{path}",
        "REGISTRY_TLS_VERIFY": "false",  # the loopback registry speaks plain HTTP
        "MLCD_REGISTRY_TLS_VERIFY": "false",
        # What a runner without registry access needs: local bases and the host's CAs for pip.
        "BASE_IMAGE": base,
        "RUNTIME_IMAGE": runtime,
        "BUILD_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        "DEPLOY_BACKEND": "podman",
        "MLCD_DEPLOY_PORT": str(port),
        "MLCD_DEPLOY_STATE_DIR": str(state),
    }
