"""Fault catalogue, registry side (README "Reliability"): real git, DVC, GTO, a local DVC remote.

Each case breaks something the way people and machines do (a version tag moved by hand, a
truncated remote copy, a damaged cache checked out, a restore killed halfway) and checks that
nothing is lost and that the message names the fix.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from ..helpers import command_env
from .conftest import bundle_bytes, head
from .test_versions import _dir_listing, _flip_one_byte, _object

pytestmark = pytest.mark.e2e


def tags(repo) -> set[str]:
    return set(repo.run("git", "tag").stdout.split())


def model_md5(repo, commit: str) -> str:
    return next(e["md5"] for e in _dir_listing(repo, commit) if e["relpath"] == "model.onnx")


def test_a_refused_promotion_leaves_no_tag_and_names_the_fix(repo, released):
    _, produced = released
    # Two versions on one commit: 1.4.0 tagged by hand on 1.2.0's commit.
    repo.run("git", "tag", "-a", "model@v1.4.0", "-m", "moved by hand", produced["1.2.0"]["commit"])
    before = tags(repo)
    done = repo.mlcd("promote", "1.4.0", "production", "--no-image-check", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "model@v1.2.0 and model@v1.4.0 each register a version on commit" in done.stderr
    assert "`git tag -d model@v1.4.0`" in done.stderr
    assert tags(repo) == before
    # GTO itself writes its tag before it re-reads and refuses: mlcd takes that tag back.
    from mlcd.errors import VersionError
    from mlcd.versions import registry

    with pytest.raises(VersionError, match="Multiple versions are not allowed"):
        registry.assign(repo.path, "model", "v1.4.0", "production", "bypassing promote's own check")
    assert tags(repo) == before
    # versions still lists, and warns
    listed = repo.mlcd("versions")
    assert "warning: model@v1.2.0 and model@v1.4.0 each register a version" in listed.stderr
    # the fix it names works: afterwards the promotion goes through
    repo.run("git", "tag", "-d", "model@v1.4.0")
    assert "-> production" in repo.mlcd("promote", "1.2.0", "production", "--no-image-check").stderr


def test_a_bad_stage_tag_is_named_and_never_blocks_restoring_a_commit(repo, released, tmp_path):
    _, produced = released
    shared = produced["1.2.0"]["commit"]
    repo.run("git", "tag", "-a", "model@v1.4.0", "-m", "moved by hand", shared)
    repo.run("git", "tag", "-a", "model#production#100", "-m", "by hand", shared)  # GTO now refuses reads
    done = repo.mlcd("versions", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "`git tag -d model@v1.4.0 model#production#100`" in done.stderr
    commit = produced["1.0.0"]["commit"]
    restored = repo.mlcd("restore", commit[:10], "--out", str(tmp_path / "out"))
    assert "restoring commit" in restored.stderr and "anyway" in restored.stderr
    assert bundle_bytes(tmp_path / "out") == produced["1.0.0"]["files"]
    by_version = repo.mlcd("restore", "1.0.0", "--out", str(tmp_path / "other"), check=False)
    assert by_version.returncode == 2 and "git tag -d" in by_version.stderr


def test_promoting_to_the_stage_it_holds_succeeds_and_writes_nothing(repo):
    repo.mlcd("promote", "1.1.0", "staging", "--no-image-check")
    before = tags(repo)
    again = repo.mlcd("promote", "1.1.0", "staging", "--no-image-check")
    assert "model@v1.1.0 already holds staging: nothing to do, no tag written" in again.stderr
    assert tags(repo) == before


def test_a_truncated_remote_copy_is_refused_and_repaired(repo, released):
    _, produced = released
    commit = produced["1.2.0"]["commit"]
    md5 = model_md5(repo, commit)
    remote_copy = _object(repo.remote, md5)
    good = remote_copy.read_bytes()
    remote_copy.chmod(0o644)
    remote_copy.write_bytes(good[: len(good) // 2])  # truncated, as an interrupted upload leaves it
    # dvc push cannot mend it: the name is there
    assert "Everything is up to date" in repo.dvc("push").stdout + repo.dvc("push").stderr
    for args in (
        ("ci", "verify-release", "model@v1.2.0"),
        ("promote", "1.2.0", "staging", "--no-image-check"),
    ):
        done = repo.mlcd(*args, check=False)
        assert done.returncode == 2, done.stderr
        assert f"models/bundle/model.onnx (md5 {md5}): damaged in the remote" in done.stderr
        assert "mlcd remote verify --repair" in done.stderr
    assert "#" not in repo.run("git", "tag").stdout  # no stage tag
    repo.run("git", "commit", "-q", "--allow-empty", "-m", "a later commit, same outputs")
    refused = repo.mlcd("release", "1.3.0", check=False)
    assert refused.returncode == 2 and "damaged in the remote" in refused.stderr
    assert "model@v1.3.0" not in tags(repo)

    listed = repo.mlcd("remote", "verify", commit, check=False)
    assert listed.returncode == 2 and "1 of " in listed.stderr and "damaged" in listed.stderr
    repaired = repo.mlcd("remote", "verify", "--repair", commit)
    assert "re-uploaded from the local cache" in repaired.stderr and "(1 re-uploaded)" in repaired.stderr
    assert remote_copy.read_bytes() == good
    checked = repo.mlcd("ci", "verify-release", "model@v1.2.0").stderr
    assert "the bundle's read back and md5-checked" in checked
    everything = repo.mlcd("ci", "verify-release", "model@v1.2.0", "--verify-data").stderr
    assert "every output's read back and md5-checked" in everything


def test_repair_without_a_good_local_copy_says_so(repo, released):
    _, produced = released
    commit = produced["1.1.0"]["commit"]
    md5 = model_md5(repo, commit)
    _flip_one_byte(_object(repo.remote, md5))
    _flip_one_byte(_object(repo.path / ".dvc" / "cache", md5))
    done = repo.mlcd("remote", "verify", "--repair", commit, check=False)
    assert done.returncode == 2
    assert "no good local copy of them here" in done.stderr


def test_restore_head_repairs_a_damaged_checkout_and_keeps_the_branch(repo, released):
    """A damaged cache copy checked out: dvc status calls it up to date, serving refuses it."""
    _, produced = released
    md5 = model_md5(repo, head(repo))
    cached = _object(repo.path / ".dvc" / "cache", md5)
    kept = cached.stat()
    _flip_one_byte(cached)  # a disk error: the bytes change, nothing else (mode and times kept)
    cached.chmod(kept.st_mode)
    os.utime(cached, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    (repo.path / "models" / "bundle" / "model.onnx").unlink()
    repo.dvc("checkout")  # the workspace copy now comes from the damaged cache copy
    assert "up to date" in repo.dvc("status").stdout.lower()
    from mlcd.bundle import verify_bundle
    from mlcd.errors import BundleError

    with pytest.raises(BundleError, match="`mlcd restore HEAD` puts back verified copies"):
        verify_bundle(repo.path / "models" / "bundle")
    done = repo.mlcd("restore", "HEAD")
    assert "replaced a damaged cache copy of models/bundle/model.onnx" in done.stderr
    assert "detached" not in done.stderr
    assert repo.run("git", "branch", "--show-current").stdout.strip() == "main"
    assert bundle_bytes(repo.path / "models" / "bundle") == produced["1.2.0"]["files"]
    verify_bundle(repo.path / "models" / "bundle")


# A process that holds a file open until its stdin closes, as a running git holds its lock.
HOLD_OPEN = "import sys; f = open(sys.argv[1]); print('open', flush=True); sys.stdin.read()"


def test_a_restore_killed_halfway_is_named_and_aborted(repo, released):
    _, produced = released
    marker = repo.path / ".dvc" / "tmp" / "mlcd-restore-in-progress.json"
    before = head(repo)
    # git's own post-checkout hook holds the restore right after git moved HEAD, so the kill lands
    # between moving HEAD and finishing every run (polling for the mark raced the restore's end).
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    moved = repo.path.parent / "head-moved"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {moved}\nexec sleep 600\n")
    hook.chmod(0o755)
    process = subprocess.Popen(
        ["mlcd", "restore", "1.0.0"],
        cwd=repo.path, env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not moved.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert moved.exists(), "the restore finished or failed before it moved HEAD"
        assert marker.exists() and head(repo) != before
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # kill -9, between moving HEAD and finishing
        process.wait()
        hook.unlink()
    warned = repo.mlcd("versions")
    assert "an `mlcd restore` of" in warned.stderr and "`mlcd restore --abort`" in warned.stderr
    assert "branch main" in warned.stderr
    other = repo.mlcd("restore", "1.1.0", check=False)  # another restore first says what is pending
    assert other.returncode == 2 and "mlcd restore --abort" in other.stderr
    # What git leaves when the kill lands inside its checkout (it does, some runs): its locks.
    locks = [repo.path / ".git" / name for name in ("index.lock", "HEAD.lock")]
    for lock in locks:
        lock.touch()
    holder = subprocess.Popen(  # a live git's lock: kept, and the abort moves nothing
        [sys.executable, "-c", HOLD_OPEN, str(locks[1])], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        held = repo.mlcd("restore", "--abort", check=False)
        assert held.returncode == 2 and "Traceback" not in held.stderr
        assert ".git/HEAD.lock is held by a running git process" in held.stderr
        assert all(lock.exists() for lock in locks) and marker.exists()
    finally:
        holder.communicate(b"", timeout=10)
    aborted = repo.mlcd("restore", "--abort")
    assert "restore aborted" in aborted.stderr
    assert "removed .git/index.lock and .git/HEAD.lock, left by the git checkout" in aborted.stderr
    assert not any(lock.exists() for lock in locks)
    assert head(repo) == before and repo.run("git", "branch", "--show-current").stdout.strip() == "main"
    assert repo.run("git", "status", "--porcelain").stdout == ""
    assert bundle_bytes(repo.path / "models" / "bundle") == produced["1.2.0"]["files"]
    assert not marker.exists()
    assert "interrupted" not in repo.mlcd("versions").stderr
    nothing = repo.mlcd("restore", "--abort", check=False)
    assert nothing.returncode == 2 and "no interrupted `mlcd restore` to abort" in nothing.stderr


def test_out_onto_a_symlink_is_one_line(repo, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for out in (link, dangling):
        done = repo.mlcd("restore", "1.0.0", "--out", str(out), check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"--out {out} is a symbolic link" in done.stderr
    assert list(target.iterdir()) == [] and not (tmp_path / "nowhere").exists()
