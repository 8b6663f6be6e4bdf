"""Helpers tests import by name: real git repositories holding a copy of this project, driven by real dvc.

Fixtures stay in conftest.py; everything a test module imports lives here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Everything a pipeline run needs; outputs and caches are left behind on purpose.
PROJECT_FILES = (
    "dvc.yaml",
    "dvc.lock",
    ".gto",
    "params.yaml",
    "pyproject.toml",
    ".dvc",
    ".dvcignore",
    "Dockerfile",
    ".dockerignore",
    ".gitignore",  # as in a fork: bytecode, caches and report output stay untracked
)
PROJECT_DIRS = ("src", "data", "metrics", "models", "deploy")


def command_env() -> dict[str, str]:
    """The environment of every process a test starts.

    Without PYTHONDONTWRITEBYTECODE (machines of this kind set it): each process of a test repository
    (dvc's stages, mlcd) then compiles the repository's src/mlcd once into its __pycache__ (ignored
    by git, no stage's dependency, copied along by clone_repo) instead of every time, about a second
    a process; the environment's own packages are compiled by .ci/setup already. As on a GitLab
    runner, whose Python images do not set it either.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("GIT_AUTHOR_NAME", "mlcd tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@mlcd.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "mlcd tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@mlcd.invalid")
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`args` in `cwd` with the venv on PATH, plus `env` for this process only (never os.environ)."""
    done = subprocess.run(args, cwd=cwd, env={**command_env(), **(env or {})}, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return done


def tracked_files() -> list[Path]:
    """Files git tracks or would track (not ignored), so outputs and caches stay behind."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard"], PROJECT_ROOT).stdout.split()
    return [Path(name) for name in listed if (PROJECT_ROOT / name).is_file()]


def tracked_project_files() -> list[Path]:
    """The tracked files a pipeline run needs (PROJECT_FILES, PROJECT_DIRS)."""
    return [path for path in tracked_files() if path.parts[0] in PROJECT_FILES + PROJECT_DIRS]


@dataclass
class Repo:
    """A git + dvc repository under a temp dir, with its local remote beside it."""

    path: Path

    @property
    def remote(self) -> Path:
        return self.path.parent / "mlcd-dvc-remote"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(list(args), self.path, check=check)

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("dvc", *args, check=check)

    def mlcd(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(["mlcd", *args], self.path, check=check, env=env)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    def lock(self) -> dict:
        return yaml.safe_load((self.path / "dvc.lock").read_text())

    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    def set_params(self, **changes: object) -> None:
        """set_params(**{"train.logistic_regression.C": 0.5}) edits params.yaml in place."""
        params = self.params()
        for dotted, value in changes.items():
            *parents, leaf = dotted.split(".")
            node = params
            for key in parents:
                node = node[key]
            node[leaf] = value
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def new_repo(path: Path) -> Repo:
    path.mkdir(parents=True)
    for relative in tracked_project_files():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, target)
    repo = Repo(path)
    repo.run("git", "init", "-q", "-b", "main")
    repo.commit("project copy")
    return repo


def add_every_tracked_file(repo: Repo) -> None:
    """Copy in what a pipeline copy leaves out (the CI file, .ci/, tests/, uv.lock), as a developer's
    clone holds it; the caller commits."""
    for relative in tracked_files():
        target = repo.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, target)


def clone_repo(source: Repo, path: Path) -> Repo:
    """A byte copy of `source` (work tree, git, dvc cache and remote) at `path`."""
    shutil.copytree(source.path, path, symlinks=True)
    if source.remote.exists():
        shutil.copytree(source.remote, path.parent / "mlcd-dvc-remote")
    return Repo(path)


def free_port_run(length: int = 3) -> int:
    """A port p with p .. p+length-1 all free: nginx and the two colours."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            start = probe.getsockname()[1]
        if start + length < 65535 and all(_free(start + i) for i in range(length)):
            return start
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(url: str, timeout: float = 60, any_answer: bool = True) -> None:
    """Until `url` answers: with any HTTP status, or (any_answer=False) with a success."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            if any_answer:
                return
            time.sleep(0.2)
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def start_service(
    args: list[str],
    url: str,
    log: Path,
    any_answer: bool = True,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A server process for a test, its output in `log`; fails with that log if `url` never answers.
    `env`: variables added to this process's environment for it."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **env} if env else None
        )
    try:
        wait_http(url, timeout=timeout, any_answer=any_answer)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"{args[0]} did not start:\n{log.read_text(errors='replace')}") from None
    return process


def committed_text(path: str) -> str:
    """`path` as the project's HEAD commits it: what a clean clone gets, whatever the work tree holds."""
    return subprocess.run(
        ["git", "show", f"HEAD:{path}"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout


def copy_params_and_data(target: Path) -> Path:
    """params.yaml and data/ (schemas, bundled files) of this project in `target`, no git."""
    for relative in tracked_project_files():
        if relative.parts[0] in {"params.yaml", "data"}:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / relative, target / relative)
    return target


def rewritten_bundle(bundle: Path, target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of `bundle` whose JSON files `change` edited ({file name: parsed JSON}), with the
    manifest's sha256s made to fit again: a bundle that is consistent, but not what package wrote."""
    from mlcd.bundle import MANIFEST
    from mlcd.files import sha256_file

    shutil.copytree(bundle, target)
    files = {path.name: json.loads(path.read_text()) for path in target.glob("*.json")}
    change(files)
    for name, body in files.items():
        if name != MANIFEST:
            (target / name).write_text(json.dumps(body))
    manifest = files[MANIFEST]
    for name in manifest.get("files", {}):
        manifest["files"][name] = sha256_file(target / name)
    (target / MANIFEST).write_text(json.dumps(manifest))
    return target


def run_pipeline_in_process(project: Path, overrides: dict) -> tuple[Any, Any]:
    """Every stage's function in this process (no dvc): (ProjectPaths, the bundle's Manifest)."""
    from mlcd.config import ProjectPaths, load_params, parse_params
    from mlcd.data.partitions import run_preprocess
    from mlcd.data.sources import run_ingest
    from mlcd.data.validation_partitions import run_validate
    from mlcd.modeling.evaluate import run_evaluate
    from mlcd.modeling.package import run_package
    from mlcd.modeling.train import run_train

    raw = load_params(project / "params.yaml").as_dict()
    for section, values in overrides.items():
        raw[section] = {**raw[section], **values}
    params = parse_params(raw)
    paths = ProjectPaths(project)
    run_ingest(params.data, paths)
    run_validate(params, paths)
    run_preprocess(params.data, params.preprocess, paths)
    run_train(params.data, params.train, paths)
    run_evaluate(params.data, params.evaluate, paths)
    return paths, run_package(params, paths)


@contextmanager
def a_worker_killed_when_busy(cluster: Any) -> Iterator[threading.Event]:
    """kill -9 of one of `cluster`'s worker processes as soon as the scheduler has a task in
    flight, while the block runs; the event says whether it happened (else the test proved nothing)."""
    from distributed import Client

    with Client(cluster) as watcher:
        victim = next(iter(watcher.run(os.getpid).values()))
        killed = threading.Event()

        def kill_when_busy() -> None:
            deadline = time.monotonic() + 60
            while not any(watcher.processing().values()) and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(victim, signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        yield killed
        killer.join(60)
