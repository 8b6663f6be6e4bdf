"""Reading dvc.yaml: which params.yaml keys each stage declares.

DVC refuses to run a stage whose declared parameter is missing from params.yaml, even where
mlcd has a default for it; `mlcd params` asks this module so it refuses what `dvc repro` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlcd.config import PARAMS_FILE
from mlcd.errors import ConfigError

PIPELINE_FILE = "dvc.yaml"


def stage_params(root: Path) -> dict[str, list[str]]:
    """{stage: the params.yaml keys it lists}; {} when there is no dvc.yaml."""
    path = root / PIPELINE_FILE
    if not path.is_file():
        return {}
    try:
        pipeline = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    found: dict[str, list[str]] = {}
    for name, stage in (pipeline.get("stages") or {}).items():
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
