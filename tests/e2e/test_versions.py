"""Releases, the version list and restore, in a temp repo with a local DVC remote."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from ..helpers import Repo
from .conftest import bundle_bytes, head

pytestmark = pytest.mark.e2e


def test_versions_lists_every_release_newest_first(repo, released):
    _, produced = released
    rows = json.loads(repo.mlcd("versions", "--json").stdout)
    assert [row["tag"] for row in rows] == ["model@v1.2.0", "model@v1.1.0", "model@v1.0.0"]
    for row in rows:
        made = produced[row["version"].removeprefix("v")]
        assert row["commit"] == made["commit"]
        assert row["model_hash"] == made["manifest"]["model_hash"]
        assert row["metrics"] == made["manifest"]["metrics"]
    assert len({row["metrics"]["log_loss"] for row in rows}) == 3


def test_versions_table_and_all_commits(repo):
    table = repo.mlcd("versions").stdout
    for version in ("v1.2.0", "v1.1.0", "v1.0.0"):
        assert f" {version} " in table
    assert "roc_auc" in table
    assert max(len(line) for line in table.splitlines()) <= 100  # fits a 100-column terminal
    rows = json.loads(repo.mlcd("versions", "--all", "--json").stdout)
    assert [row["version"] for row in rows] == ["v1.2.0", "v1.1.0", "v1.0.0", None]


def test_release_message_records_model_hash_and_metrics(repo, released):
    message = repo.run("git", "tag", "-l", "--format=%(contents)", "model@v1.1.0").stdout
    manifest = released[1]["1.1.0"]["manifest"]
    assert f"model_hash: {manifest['model_hash']}" in message
    assert f"roc_auc={manifest['metrics']['roc_auc']}" in message


def test_restore_out_writes_each_bundle_byte_identical_and_leaves_workspace(repo, released, tmp_path):
    _, produced = released
    before = head(repo)
    for version, made in produced.items():
        out = tmp_path / f"bundle-{version}"
        done = repo.mlcd("restore", version, "--out", str(out))
        assert "manifest sha256s verified" in done.stderr
        assert bundle_bytes(out) == made["files"]
    assert head(repo) == before
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert bundle_bytes(repo.path / "models" / "bundle") == produced["1.2.0"]["files"]


def test_restore_workspace_checks_out_each_version(repo, released):
    _, produced = released
    for version in ("1.0.0", "model@v1.1.0", "v1.2.0"):
        plain = version.removeprefix("model@v").removeprefix("v")
        done = repo.mlcd("restore", version)
        assert "HEAD is now detached at" in done.stderr and "go back with `git switch -`" in done.stderr
        assert head(repo) == produced[plain]["commit"]
        assert bundle_bytes(repo.path / "models" / "bundle") == produced[plain]["files"]
        assert repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_restore_from_remote_with_an_empty_cache(repo, released, tmp_path):
    _, produced = released
    shutil.rmtree(repo.path / ".dvc" / "cache")
    out = tmp_path / "from-remote"
    done = repo.mlcd("restore", "1.0.0", "--out", str(out))
    assert "fetched from the remote" in done.stderr
    assert bundle_bytes(out) == produced["1.0.0"]["files"]
    repo.mlcd("restore", "1.1.0")
    assert bundle_bytes(repo.path / "models" / "bundle") == produced["1.1.0"]["files"]


def test_missing_object_is_named_and_nothing_changes(repo, released):
    _, produced = released
    made = produced["1.1.0"]  # 1.0.0 trains what the first commit did
    model_md5 = next(e["md5"] for e in _dir_listing(repo, made["commit"]) if e["relpath"] == "model.onnx")
    for store in (repo.path / ".dvc" / "cache", repo.remote):
        (store / "files" / "md5" / model_md5[:2] / model_md5[2:]).unlink()
    before_head, before_bundle = head(repo), bundle_bytes(repo.path / "models" / "bundle")
    for args in (("restore", "1.1.0"), ("restore", "1.1.0", "--out", str(repo.path.parent / "x"))):
        done = repo.mlcd(*args, check=False)
        assert done.returncode == 2
        assert (
            f"error: cannot restore model@v1.1.0 (commit {made['commit'][:8]}): 1 file(s) are in neither "
            f"the local cache nor remote 'local' ({repo.remote}). Nothing was changed."
        ) in done.stderr
        assert (
            f"  - models/bundle/model.onnx (md5 {model_md5}), produced by commit {made['commit'][:8]}"
        ) in done.stderr
        assert f"git checkout {made['commit'][:8]} && dvc repro && dvc push" in done.stderr
    assert head(repo) == before_head
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert bundle_bytes(repo.path / "models" / "bundle") == before_bundle
    assert not (repo.path.parent / "x").exists()


def _dir_listing(repo: Repo, commit: str) -> list[dict]:
    import yaml

    lock = yaml.safe_load(repo.run("git", "show", f"{commit}:dvc.lock").stdout)
    md5 = lock["stages"]["package"]["outs"][0]["md5"]
    return json.loads((repo.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_text())


def test_dirty_workspace_is_refused(repo):
    (repo.path / "params.yaml").write_text((repo.path / "params.yaml").read_text() + "\n# note\n")
    for args in (("restore", "1.0.0"), ("release", "2.0.0")):
        done = repo.mlcd(*args, check=False)
        assert done.returncode == 2
        assert "the workspace has uncommitted changes; commit or stash them first:" in done.stderr
        assert "M params.yaml" in done.stderr


def test_modified_output_is_refused(repo):
    (repo.path / "models" / "model.skops").write_bytes(b"hand edited")
    done = repo.mlcd("restore", "1.0.0", check=False)
    assert done.returncode == 2
    assert "models/model.skops (modified since dvc.lock)" in done.stderr


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.2.0", "model@v1.2.0 already exists (commit"),
        ("1.1.5", "v1.1.5 is lower than the latest release model@v1.2.0; versions only go up"),
        ("1.3", "'1.3' is not a version: use semantic versioning MAJOR.MINOR.PATCH"),
        ("v2.0.0-rc_1", "is not a version"),
        ("2.0.0", "'model' is already registered in this commit with version 'v1.2.0'"),
    ],
)
def test_bad_versions_are_refused(repo, version, message):
    done = repo.mlcd("release", version, check=False)
    assert done.returncode == 2
    assert message in done.stderr


def test_release_refuses_stale_lock_and_unpushed_outputs(repo):
    repo.set_params(**{"train.logistic_regression.C": 0.3})
    repo.commit("params changed, not reproduced")
    done = repo.mlcd("release", "2.0.0", check=False)
    assert "dvc.lock does not match the workspace: run `dvc repro`" in done.stderr
    # Back to v1.2.0's pipeline on a new commit, its model lost from the remote as if never pushed
    # (as a `dvc repro` of a new model left unpushed, without the 15 s of that run).
    repo.run("git", "revert", "--no-edit", "HEAD")
    model_md5 = next(
        o["md5"] for o in repo.lock()["stages"]["train"]["outs"] if o["path"] == "models/model.skops"
    )
    _object(repo.remote, model_md5).unlink()
    done = repo.mlcd("release", "2.0.0", check=False)
    assert done.returncode == 2
    assert "outputs of commit " in done.stderr and "are not in remote 'local'" in done.stderr
    assert "run `dvc push` first" in done.stderr
    assert "models/model.skops" in done.stderr
    repo.dvc("push")
    repo.mlcd("release", "2.0.0")


def test_unknown_ref_lists_releases(repo):
    done = repo.mlcd("restore", "9.9.9", check=False)
    assert done.returncode == 2
    assert (
        "'9.9.9' is not a version, a stage, a tag or a commit (versions: v1.2.0, v1.1.0, v1.0.0; "
        "stages: staging, production)"
    ) in done.stderr


def _object(store: Path, md5: str) -> Path:
    return store / "files" / "md5" / md5[:2] / md5[2:]


def _flip_one_byte(path: Path) -> None:
    path.chmod(0o644)  # DVC keeps its cache read-only
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _state(repo: Repo) -> dict:
    """HEAD, git status, the workspace bundle and every cache file's bytes: what a restore could change."""
    cache = repo.path / ".dvc" / "cache"
    return {
        "head": head(repo),
        "status": repo.run("git", "status", "--porcelain").stdout,
        "bundle": bundle_bytes(repo.path / "models" / "bundle"),
        "cache": {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()},
    }


def test_a_damaged_remote_object_changes_nothing(repo, released, tmp_path):
    _, produced = released
    model_md5 = next(
        e["md5"] for e in _dir_listing(repo, produced["1.1.0"]["commit"]) if e["relpath"] == "model.onnx"
    )
    _object(repo.path / ".dvc" / "cache", model_md5).unlink()  # so it must come from the remote
    damaged = _object(repo.remote, model_md5)
    _flip_one_byte(damaged)
    actual = hashlib.md5(damaged.read_bytes()).hexdigest()
    empty = tmp_path / "empty"
    empty.mkdir()
    before = _state(repo)
    for args in (
        ("restore", "1.1.0"),
        ("restore", "1.1.0", "--out", str(tmp_path / "new")),
        ("restore", "model@v1.1.0", "--out", str(empty)),
    ):
        done = repo.mlcd(*args, check=False)
        assert done.returncode == 2, done.stderr
        assert (
            "1 file(s) are damaged: their bytes do not match the md5 dvc.lock records. Nothing was changed"
            in done.stderr
        )
        assert (
            f"models/bundle/model.onnx: expected md5 {model_md5}, got {actual} "
            f"(from remote 'local' ({repo.remote}): {damaged})"
        ) in done.stderr
        assert _state(repo) == before  # HEAD, workspace and cache exactly as they were
    assert not (tmp_path / "new").exists()
    assert list(empty.iterdir()) == []
    assert not list((repo.path / ".dvc" / "tmp").glob(".mlcd-restore-*"))


def test_a_damaged_cache_copy_is_replaced_by_the_remote_one(repo, released, tmp_path):
    _, produced = released
    model_md5 = next(
        e["md5"] for e in _dir_listing(repo, produced["1.0.0"]["commit"]) if e["relpath"] == "model.onnx"
    )
    cached = _object(repo.path / ".dvc" / "cache", model_md5)
    _flip_one_byte(cached)
    done = repo.mlcd("restore", "1.0.0", "--out", str(tmp_path / "out"))
    assert "replaced a damaged cache copy of models/bundle/model.onnx" in done.stderr
    assert bundle_bytes(tmp_path / "out") == produced["1.0.0"]["files"]
    assert hashlib.md5(cached.read_bytes()).hexdigest() == model_md5


def test_damaged_in_cache_and_remote_is_removed_from_the_cache(repo, released):
    _, produced = released
    model_md5 = next(
        e["md5"] for e in _dir_listing(repo, produced["1.0.0"]["commit"]) if e["relpath"] == "model.onnx"
    )
    cached = _object(repo.path / ".dvc" / "cache", model_md5)
    for copy in (cached, _object(repo.remote, model_md5)):
        _flip_one_byte(copy)
    before = head(repo)
    done = repo.mlcd("restore", "1.0.0", check=False)
    assert done.returncode == 2
    assert "(damaged copies were removed from the local cache)" in done.stderr
    assert f"removed from the cache: models/bundle/model.onnx (md5 {model_md5}" in done.stderr
    assert not cached.exists()
    assert head(repo) == before


def test_out_that_is_a_file_is_refused(repo, tmp_path):
    existing = tmp_path / "bundle.tar"
    existing.write_bytes(b"keep me")
    done = repo.mlcd("restore", "1.0.0", "--out", str(existing), check=False)
    assert done.returncode == 2
    assert f"--out {existing} is an existing file: give a new or empty directory" in done.stderr
    assert "Traceback" not in done.stderr
    assert existing.read_bytes() == b"keep me"
