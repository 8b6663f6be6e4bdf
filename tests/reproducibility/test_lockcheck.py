"""Which stage a wrong dvc.lock points at, and why: stale inputs, non-determinism, downstream."""

import copy

import yaml

from mlcd.ci.remote import configure_remote, redacted
from mlcd.reproducibility.lockcheck import explain, lock_drift

from ..helpers import PROJECT_ROOT

COMMITTED = yaml.safe_load((PROJECT_ROOT / "dvc.lock").read_text())


def _entry(lock: dict, stage: str, kind: str, path: str) -> dict:
    return next(item for item in lock["stages"][stage][kind] if item["path"] == path)


def test_identical_locks_have_no_drift():
    assert lock_drift(COMMITTED["stages"], copy.deepcopy(COMMITTED)["stages"]) == []


def test_changed_source_file_is_stale_and_downstream_stages_are_consequences():
    reproduced = copy.deepcopy(COMMITTED)
    _entry(reproduced, "train", "deps", "src/mlcd/modeling/train.py")["md5"] = "0" * 32
    _entry(reproduced, "train", "outs", "models/model.skops")["md5"] = "1" * 32
    _entry(reproduced, "evaluate", "deps", "models/model.skops")["md5"] = "1" * 32
    drifts = lock_drift(COMMITTED["stages"], reproduced["stages"])
    assert [(d.stage, d.kind) for d in drifts] == [("train", "stale"), ("evaluate", "downstream")]
    lines = explain(drifts)
    assert lines[0].startswith("stale: stage 'train' was not re-run after its inputs changed: ")
    assert "src/mlcd/modeling/train.py (md5 " in lines[0]
    assert lines[-1] == "changed only because an upstream output changed: evaluate"


def test_same_inputs_different_outputs_is_left_to_the_content_comparison():
    reproduced = copy.deepcopy(COMMITTED)
    _entry(reproduced, "package", "outs", "models/bundle")["md5"] = "2" * 32 + ".dir"
    (drift,) = lock_drift(COMMITTED["stages"], reproduced["stages"])
    assert drift.kind == "non-deterministic"
    assert drift.changed_outputs == ["models/bundle"]
    # Not called non-determinism by hash alone: float noise from another CPU changes bytes too.
    assert explain([drift]) == []


def test_nested_params_are_named_by_dotted_key_and_missing_stages_are_stale():
    reproduced = copy.deepcopy(COMMITTED)
    reproduced["stages"]["train"]["params"]["params.yaml"]["train"] = {"logistic_regression": {"C": 9}}
    committed = copy.deepcopy(COMMITTED)
    committed["stages"]["train"]["params"]["params.yaml"]["train"] = {"logistic_regression": {"C": 1}}
    del reproduced["stages"]["ingest"]
    drifts = {d.stage: d for d in lock_drift(committed["stages"], reproduced["stages"])}
    assert drifts["train"].inputs == ["param train.logistic_regression.C: 1 -> 9"]
    assert drifts["ingest"].inputs == ["stage missing from the reproduced pipeline"]


def test_remote_comes_from_ci_variables_into_the_ignored_local_config(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = local\n")
    assert configure_remote(tmp_path, {}) is None
    env = {"DVC_REMOTE_URL": "s3://bucket/dvc", "DVC_REMOTE_ENDPOINT_URL": "http://127.0.0.1:9000"}
    assert configure_remote(tmp_path, env) == "s3://bucket/dvc (endpointurl=http://127.0.0.1:9000)"
    local = (tmp_path / ".dvc" / "config.local").read_text()
    assert "remote = ci" in local and "url = s3://bucket/dvc" in local
    assert (tmp_path / ".dvc" / "config").read_text() == "[core]\n    remote = local\n"
    assert redacted("https://user:secret@dav.example/dvc") == "https://***@dav.example/dvc"
