"""The one reader of DVC's files: dvc.yaml (stages, their params and outputs, the model artifact)
and dvc.lock (each output's md5), in the workspace or at a commit. Everyone else asks here.

DVC refuses to run a stage whose declared parameter is missing from params.yaml, even where
mlcd has a default for it; `mlcd params` asks this module so it refuses what `dvc repro` would.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlcd.config import LOCK_FILE, PARAMS_FILE
from mlcd.errors import ConfigError, VersionError
from mlcd.files import remove_leftovers
from mlcd.git import show_file

PIPELINE_FILE = "dvc.yaml"
OUTPUT_KINDS = ("outs", "metrics", "plots")
DVC_LOCK = Path(".dvc") / "tmp" / "lock"  # DVC holds it (flock) while it runs stages


def _pipeline(root: Path) -> dict[str, Any]:
    path = root / PIPELINE_FILE
    if not path.is_file():
        return {}
    try:
        pipeline = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return pipeline if isinstance(pipeline, dict) else {}


def _stages(root: Path) -> dict[str, Any]:
    stages: dict[str, Any] = _pipeline(root).get("stages") or {}
    return stages


# -- the model artifact ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    name: str  # GTO's name: `model`, or `dir:model` for a dvc.yaml in a subdirectory
    path: str


def require_project(root: Path) -> None:
    """A clear error, not a traceback, when run outside the project's root."""
    if (root / PIPELINE_FILE).is_file():
        return
    here = root.resolve()
    above = next((p for p in here.parents if (p / PIPELINE_FILE).is_file()), None)
    hint = (
        f"run it in {above} or pass --repo {above}"
        if above
        else "run it in the project's root or pass --repo"
    )
    raise VersionError(f"{here} is not an mlcd project (it has no {PIPELINE_FILE}): {hint}")


def model_artifact(root: Path) -> Artifact:
    """The one artifact of type model that dvc.yaml declares: GTO's and the registry's name for it."""
    require_project(root)
    artifacts = _pipeline(root).get("artifacts") or {}
    models = [(name, spec) for name, spec in artifacts.items() if spec.get("type") == "model"]
    if len(models) != 1:
        raise VersionError(
            f"{PIPELINE_FILE} must declare exactly one artifact of type model under `artifacts:`"
        )
    name, spec = models[0]
    return Artifact(name, spec["path"])


# -- dvc.lock ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    """A dvc.lock as DVC wrote it: `stages` is its mapping of stage name to cmd, deps, params, outs."""

    stages: dict[str, Any]
    text: str  # as committed: its md5 names a pipeline state (tracking)

    def output_md5s(self) -> dict[str, str]:
        """{output path: md5 (a directory's ends in .dir)} over every stage."""
        return {
            out["path"]: str(out.get("md5", ""))
            for stage in self.stages.values()
            for out in stage.get("outs") or []
        }

    def output_md5(self, path: str) -> str | None:
        return self.output_md5s().get(path)


def blank_lock_advice(root: Path) -> str | None:
    """What to do about a dvc.lock left empty by a `dvc repro` killed while writing it."""
    lock = root / LOCK_FILE
    # Only a small file can be blank: a real lock is never read whole here, on every command.
    if lock.is_file() and lock.stat().st_size < 64 and not lock.read_text(errors="replace").strip():
        return (
            f"{LOCK_FILE} is empty (a `dvc repro` killed while writing it?): put the committed one back "
            f"with `git checkout HEAD -- {LOCK_FILE}`, then `dvc repro`"
        )
    return None


def parse_lock(text: str) -> Lock:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{LOCK_FILE} is not valid YAML: {exc}") from None
    stages = raw.get("stages") if isinstance(raw, dict) else None
    return Lock(stages if isinstance(stages, dict) else {}, text)


def read_lock(root: Path) -> Lock | None:
    """The workspace's dvc.lock; None when there is none."""
    path = root / LOCK_FILE
    return parse_lock(path.read_text(encoding="utf-8")) if path.is_file() else None


def lock_at(root: Path, commit: str) -> Lock | None:
    """dvc.lock as `commit` holds it; None when the commit has none."""
    text = show_file(root, commit, LOCK_FILE)
    return None if text is None else parse_lock(text)


def cached_outputs_at(root: Path, commit: str) -> dict[str, str] | None:
    """{output path: md5} at `commit` for the outputs DVC caches (`cache: false` ones live in git);
    None when the commit holds no pipeline."""
    lock, pipeline_text = lock_at(root, commit), show_file(root, commit, PIPELINE_FILE)
    if lock is None or pipeline_text is None:
        return None
    stages = (yaml.safe_load(pipeline_text) or {}).get("stages") or {}
    uncached = {path for path, options in _outputs(stages) if options.get("cache") is False}
    return {path: md5 for path, md5 in lock.output_md5s().items() if path not in uncached}


def _outputs(stages: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, options) of every output a stage declares (outs, metrics, plots), as dvc.yaml names it."""
    for stage in stages.values():
        for kind in OUTPUT_KINDS:
            for entry in stage.get(kind) or []:
                if isinstance(entry, dict):
                    name, options = next(iter(entry.items()))
                    yield str(name), options or {}
                else:
                    yield str(entry), {}


def output_paths(root: Path) -> list[Path]:
    """Every path a stage writes (outs, metrics, plots), as dvc.yaml names them."""
    return [root / path for path, _ in _outputs(_stages(root))]


def remove_stale_leftovers(root: Path) -> None:
    """Delete the temporary siblings a killed stage left beside its outputs, unless DVC is running.

    A stage removes its own leftovers when it runs again, but a run restored from DVC's run-cache
    runs no code of ours: so any mlcd command cleans them, when no `dvc repro` holds the lock.
    """
    lock = root / DVC_LOCK
    try:
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
            for output in output_paths(root):
                remove_leftovers(output)
    except OSError:  # no .dvc/tmp, or DVC is running and owns whatever is there
        return


def stage_and_downstream(root: Path, name: str) -> set[str]:
    """`name` and every stage that depends, directly or through others, on what it writes."""
    stages = _stages(root)
    found, written = {name}, {path for path, _ in _outputs({name: stages.get(name) or {}})}
    grew = True
    while grew:
        grew = False
        for other, stage in stages.items():
            deps = {str(dep) for dep in stage.get("deps") or []}
            reads = any(dep == out or dep.startswith(f"{out}/") for dep in deps for out in written)
            if other not in found and reads:
                found.add(other)
                written |= {path for path, _ in _outputs({other: stage})}
                grew = True
    return found


def stage_params(root: Path) -> dict[str, list[str]]:
    """{stage: the params.yaml keys it lists}; {} when there is no dvc.yaml."""
    found: dict[str, list[str]] = {}
    for name, stage in _stages(root).items():
        keys: list[str] = []
        for entry in stage.get("params") or []:
            if isinstance(entry, str):
                keys.append(entry)
            elif isinstance(entry, dict):  # {other-file.yaml: [keys]}: only params.yaml is ours
                keys += [str(k) for k in entry.get(PARAMS_FILE) or []]
        found[name] = keys
    return found


def missing_params(root: Path, raw: Any) -> list[str]:
    """`stage: key` for every key dvc.yaml declares that the params.yaml mapping `raw` lacks."""
    return [
        f"{key}: listed by stage {stage!r} in {PIPELINE_FILE}, missing from {PARAMS_FILE}"
        for stage, keys in stage_params(root).items()
        for key in keys
        if not _has(raw, key.split("."))
    ]


def _has(tree: Any, parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True
