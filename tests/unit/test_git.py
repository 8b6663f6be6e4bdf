"""Recovering git's checkout locks, on a real git repository with real git processes."""

import subprocess

import pytest

from mlcd.git import remove_stale_checkout_locks


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    return tmp_path


def test_locks_a_killed_checkout_left_are_removed(repo):
    for name in ("index.lock", "HEAD.lock"):
        (repo / ".git" / name).touch()
    assert remove_stale_checkout_locks(repo) == (["index.lock", "HEAD.lock"], [])
    assert not list((repo / ".git").glob("*.lock"))
    assert remove_stale_checkout_locks(repo) == ([], [])


def test_a_git_at_work_in_the_repository_keeps_every_lock(repo):
    """git closes a ref's lock before renaming it: no open file, yet the lock is live."""
    (repo / ".git" / "HEAD.lock").touch()
    (repo / ".git" / "index.lock").touch()
    working = subprocess.Popen(["git", "cat-file", "--batch"], cwd=repo / ".git", stdin=subprocess.PIPE)
    try:
        assert remove_stale_checkout_locks(repo) == ([], ["index.lock", "HEAD.lock"])
    finally:
        working.communicate(b"", timeout=10)
    assert remove_stale_checkout_locks(repo) == (["index.lock", "HEAD.lock"], [])


def test_a_lock_held_open_keeps_the_others_too(repo):
    (repo / ".git" / "index.lock").touch()
    with (repo / ".git" / "HEAD.lock").open("w"):
        assert remove_stale_checkout_locks(repo) == ([], ["HEAD.lock"])
    assert (repo / ".git" / "index.lock").exists()
