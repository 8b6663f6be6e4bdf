"""Compare the committed dvc.lock with the one `dvc repro` leaves, stage by stage.

A stage whose own inputs (command, source files, data, params) differ from the
commit means the lock is stale: someone changed code or params and did not run
`dvc repro`. A stage whose inputs match but whose output bytes differ is either
float noise (another CPU) or non-determinism: reproducibility/equivalence.py tells which by
comparing contents. Stages that only differ because an upstream output changed
are named too, but as consequences, so the message points at the cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlcd.config import flatten


@dataclass
class StageDrift:
    stage: str
    inputs: list[str] = field(default_factory=list)  # own inputs that changed
    upstream: list[str] = field(default_factory=list)  # deps produced by other stages that changed
    outputs: list[str] = field(default_factory=list)  # each changed output with its hashes, for people
    changed_outputs: list[str] = field(default_factory=list)  # the same outputs' paths

    @property
    def kind(self) -> str:
        if self.inputs:
            return "stale"
        if self.upstream:
            return "downstream"
        return "non-deterministic"


def _hashes(entries: list[dict[str, Any]] | None) -> dict[str, str | None]:
    return {entry["path"]: entry.get("md5") or entry.get("etag") for entry in entries or []}


def _params(stage: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    # Dotted keys, so a stage that depends on a whole section names the one value that changed.
    for values in (stage.get("params") or {}).values():
        flat |= flatten(values)
    return flat


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _file_change(path: str, old: str | None, new: str | None) -> str:
    if old is None:
        return f"{path} (not in the committed lock)"
    if new is None:
        return f"{path} (no longer a dependency)"
    return f"{path} (md5 {old[:8]} -> {new[:8]})"


def _param_change(key: str, old: Any, new: Any) -> str:
    return f"param {key}: {old!r} -> {new!r}"


def lock_drift(old_stages: dict[str, Any], new_stages: dict[str, Any]) -> list[StageDrift]:
    """Every stage whose dvc.lock entry differs (committed, reproduced: dvcfiles.Lock.stages), in
    pipeline order, each with what changed."""
    produced = {path for stage in new_stages.values() for path in _hashes(stage.get("outs"))}
    drifts = []
    for name in [*new_stages, *(s for s in old_stages if s not in new_stages)]:
        old, new = old_stages.get(name), new_stages.get(name)
        if old is None or new is None:
            where = "the committed dvc.lock" if old is None else "the reproduced pipeline"
            drifts.append(StageDrift(name, inputs=[f"stage missing from {where}"]))
            continue
        drift = StageDrift(name)
        if old.get("cmd") != new.get("cmd"):
            drift.inputs.append(f"cmd: {old.get('cmd')!r} -> {new.get('cmd')!r}")
        for path, before, after in _diff(_hashes(old.get("deps")), _hashes(new.get("deps"))):
            (drift.upstream if path in produced else drift.inputs).append(_file_change(path, before, after))
        drift.inputs += [_param_change(*change) for change in _diff(_params(old), _params(new))]
        for change in _diff(_hashes(old.get("outs")), _hashes(new.get("outs"))):
            drift.outputs.append(_file_change(*change))
            drift.changed_outputs.append(change[0])
        if drift.inputs or drift.upstream or drift.outputs:
            drifts.append(drift)
    return drifts


def explain(drifts: list[StageDrift]) -> list[str]:
    """One line per stale stage, saying what to do, then the stages that only followed upstream.

    Stages whose outputs changed from the same inputs are not judged here: their contents decide
    (reproducibility/equivalence.py), since float noise from another CPU changes bytes too.
    """
    lines = [
        f"stale: stage '{drift.stage}' was not re-run after its inputs changed: "
        f"{'; '.join(drift.inputs)}. Run `dvc repro`, commit dvc.lock and `dvc push`."
        for drift in drifts
        if drift.kind == "stale"
    ]
    downstream = [drift.stage for drift in drifts if drift.kind == "downstream"]
    if downstream:
        lines.append(f"changed only because an upstream output changed: {', '.join(downstream)}")
    return lines
