"""versions/registry.py, GTO's tags through GTO's library, on a real git repository (fast: no dvc)."""

import subprocess

import pytest

from mlcd.errors import VersionError
from mlcd.versions import registry

GIT_USER = ["-c", "user.name=t", "-c", "user.email=t@t"]


def _commit(root, name):
    (root / name).write_text(name)
    subprocess.run(["git", "add", name], cwd=root, check=True)
    subprocess.run(["git", *GIT_USER, "commit", "-qm", name], cwd=root, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    for key, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@t")):
        monkeypatch.setenv(key, value)
        monkeypatch.setenv(key.replace("AUTHOR", "COMMITTER"), value)
    return tmp_path


def test_register_assign_and_unassign_read_back_as_gto_shows_them(repo):
    first, second = _commit(repo, "a"), _commit(repo, "b")
    assert registry.list_registered(repo, "model") == []
    assert registry.register(repo, "model", "v1.0.0", first, "one") == "model@v1.0.0"
    registry.register(repo, "model", "v1.1.0", second, "two")
    tag = registry.assign(repo, "model", "v1.0.0", "production", "go")
    assert tag.startswith("model#production#")
    versions = registry.list_registered(repo, "model")
    assert [v.version for v in versions] == ["v1.1.0", "v1.0.0"]  # highest first
    assert registry.in_stage(repo, "model", "production").commit == first
    assert registry.find_version(repo, "model", "1.1.0").commit == second  # with or without the v
    registry.unassign(repo, "model", "v1.0.0", "production", "stop")
    assert registry.in_stage(repo, "model", "production") is None
    events = registry.tag_events(repo, "model@v1.0.0")
    assert [(e.artifact, e.version, e.commit) for e in events] == [("model", "v1.0.0", first)]


def test_a_refused_write_leaves_no_tag_behind(repo):
    commit = _commit(repo, "a")
    registry.register(repo, "model", "v1.0.0", commit, "one")
    before = subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True).stdout
    with pytest.raises(VersionError):
        registry.register(repo, "model", "v1.0.0", commit, "again")  # GTO refuses a second registration
    assert subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True).stdout == before


@pytest.mark.parametrize(("text", "tagged"), [("1.4.0", "v1.4.0"), ("v1.5.0-rc.1", "v1.5.0-rc.1")])
def test_versions_are_semantic(text, tagged):
    assert registry.valid_version(text) == tagged


def test_a_version_that_is_not_semantic_says_what_is():
    with pytest.raises(VersionError, match=r"MAJOR\.MINOR\.PATCH"):
        registry.valid_version("1.4")
    assert registry.version_key("v1.4.0-rc.1") < registry.version_key("v1.4.0")


def test_stages_come_from_gto_config_or_the_defaults(repo):
    assert registry.stages(repo) == registry.DEFAULT_STAGES
    (repo / ".gto").write_text("stages: [dev, prod]\n")
    assert registry.stages(repo) == ("dev", "prod")
