"""dvcfiles.py, the one reader of dvc.yaml and dvc.lock, on a real git repository holding this
project's committed pair (no dvc run needed)."""

import subprocess

import pytest

from mlcd.dvcfiles import (
    blank_lock_advice,
    cached_outputs_at,
    lock_at,
    model_artifact,
    parse_lock,
    read_lock,
    stage_and_downstream,
    stage_params,
)
from mlcd.errors import ConfigError, VersionError

from ..helpers import PROJECT_ROOT, committed_text


@pytest.fixture
def repo(tmp_path):
    for name in ("dvc.yaml", "dvc.lock"):
        (tmp_path / name).write_text(committed_text(name))
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *args], cwd=tmp_path, check=True)
    return tmp_path


def test_the_committed_lock_reads_the_same_from_the_workspace_and_from_head(repo):
    at_head, here = lock_at(repo, "HEAD"), read_lock(repo)
    assert at_head is not None and here is not None
    assert at_head.output_md5s() == here.output_md5s()
    assert set(at_head.stages) == set(stage_params(repo))  # every stage of dvc.yaml is locked
    bundle = at_head.output_md5(model_artifact(repo).path)
    assert bundle is not None and bundle.endswith(".dir")


def test_cached_outputs_leave_out_what_git_keeps(repo):
    outputs = cached_outputs_at(repo, "HEAD")
    assert outputs is not None and model_artifact(repo).path in outputs
    assert "metrics/plots" in read_lock(repo).output_md5s()  # cache: false in dvc.yaml
    assert "metrics/plots" not in outputs


def test_a_commit_without_a_lock_has_no_outputs(repo):
    (repo / "dvc.lock").unlink()
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "rm"], cwd=repo, check=True
    )
    assert lock_at(repo, "HEAD") is None and cached_outputs_at(repo, "HEAD") is None
    assert lock_at(repo, "HEAD~1") is not None


def test_broken_and_blank_locks_say_what_to_do(repo):
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_lock("stages: [")
    assert blank_lock_advice(repo) is None
    (repo / "dvc.lock").write_text("\n")
    assert "git checkout HEAD -- dvc.lock" in (blank_lock_advice(repo) or "")


def test_outside_a_project_the_artifact_lookup_names_the_way_in(repo):
    inner = repo / "src"
    inner.mkdir()
    with pytest.raises(VersionError, match=f"run it in {repo}"):
        model_artifact(inner)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(VersionError, match="exactly one artifact of type model"):
        model_artifact(repo)


def test_stage_and_downstream_follows_outputs_into_deps():
    """What the lock check re-judges after a cluster-trained model (ci/reproduce.py)."""
    assert stage_and_downstream(PROJECT_ROOT, "train") == {"train", "evaluate", "package"}
    assert stage_and_downstream(PROJECT_ROOT, "package") == {"package"}
    assert stage_and_downstream(PROJECT_ROOT, "ingest") == set(stage_params(PROJECT_ROOT))
