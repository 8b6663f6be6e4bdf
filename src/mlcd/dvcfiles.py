"""Reading dvc.yaml: which params.yaml keys each stage declares, and where stages write.

DVC refuses to run a stage whose declared parameter is missing from params.yaml, even where
mlcd has a default for it; `mlcd params` asks this module so it refuses what `dvc repro` would.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

import yaml

from mlcd.config import PARAMS_FILE
from mlcd.errors import ConfigError
from mlcd.files import remove_leftovers

PIPELINE_FILE = "dvc.yaml"
OUTPUT_KINDS = ("outs", "metrics", "plots")
DVC_LOCK = Path(".dvc") / "tmp" / "lock"  # DVC holds it (flock) while it runs stages


def _stages(root: Path) -> dict[str, Any]:
    path = root / PIPELINE_FILE
    if not path.is_file():
        return {}
    try:
        pipeline = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    stages: dict[str, Any] = pipeline.get("stages") or {}
    return stages


def output_paths(root: Path) -> list[Path]:
    """Every path a stage writes (outs, metrics, plots), as dvc.yaml names them."""
    return [
        root / (next(iter(entry)) if isinstance(entry, dict) else str(entry))
        for stage in _stages(root).values()
        for kind in OUTPUT_KINDS
        for entry in stage.get(kind) or []
    ]


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
