"""The registry as GTO writes it: every tag kind made by the `gto` CLI itself, read back by mlcd.

mlcd must see what `gto show` sees (versions, stages, deregistrations, deprecations), resolve
stages and tags in `restore`, and write promotion tags GTO reads the same way.
"""

import json
import time

import pytest

from ..helpers import VENV_BIN, Repo, clone_repo
from .conftest import bundle_bytes

pytestmark = pytest.mark.e2e


def gto(repo: Repo, *args: str) -> str:
    return repo.run(str(VENV_BIN / "gto"), *args).stdout


def gto_event(repo: Repo, *args: str) -> None:
    """A gto write one second after the previous one: GTO orders events by their tags' dates, which
    git records in whole seconds, so two events in one second would have no order (as for GTO itself)."""
    time.sleep(1.05)
    gto(repo, *args)


def gto_versions(repo: Repo, *flags: str) -> list[tuple[str, list[str]]]:
    shown = json.loads(gto(repo, "show", "model", "--json", *flags))
    return [(v["version"], [s["stage"] for s in v["stages"]]) for v in shown if v["registrations"]]


def mlcd_versions(repo: Repo, *flags: str) -> list[tuple[str, list[str]]]:
    rows = json.loads(repo.mlcd("versions", "--json", *flags).stdout)
    return [(row["version"], row["stages"]) for row in rows if row["version"]]


@pytest.fixture(scope="module")
def every_tag_kind(released, tmp_path_factory) -> Repo:
    """The three releases plus, all made by the gto CLI: a pre-release with build metadata,
    stage assignments and an unassignment, a deregistration, and a deprecated `dir:name` artifact.
    Shared by the tests that only read it (restores go to --out directories)."""
    repo = clone_repo(released[0], tmp_path_factory.mktemp("every-tag-kind") / "repo")
    repo.run("git", "commit", "-q", "--allow-empty", "-m", "same model, release candidate")
    gto_event(repo, "register", "model", "HEAD", "--version", "v1.3.0-rc.1+build.5")
    gto_event(repo, "assign", "model", "--version", "v1.1.0", "--stage", "production")
    gto_event(repo, "assign", "model", "--version", "v1.0.0", "--stage", "staging")
    gto_event(repo, "assign", "model", "--version", "v1.2.0", "--stage", "staging")
    gto_event(repo, "deprecate", "model", "v1.2.0", "staging")  # unassign
    gto_event(repo, "deprecate", "model", "v1.0.0")  # deregister
    gto_event(repo, "register", "models:clf", "HEAD", "--version", "v0.1.0")
    gto_event(repo, "deprecate", "models:clf")
    return repo


def test_every_tag_kind_is_made_as_gto_spells_it(every_tag_kind):
    tags = every_tag_kind.run("git", "tag").stdout.split()
    for tag in (
        "model@v1.3.0-rc.1+build.5",
        "model#production#1",
        "model#staging!#4",
        "model@v1.0.0!",
        "models=clf@v0.1.0",
        "models=clf@deprecated",
    ):
        assert tag in tags


def test_versions_agree_with_gto_show(every_tag_kind):
    repo = every_tag_kind
    assert mlcd_versions(repo) == gto_versions(repo)
    assert mlcd_versions(repo, "--all") == gto_versions(repo, "--deprecated")
    listed = [version for version, _ in mlcd_versions(repo)]
    assert listed == ["v1.3.0-rc.1+build.5", "v1.2.0", "v1.1.0"]  # deregistered v1.0.0 hidden
    stages = dict(mlcd_versions(repo))
    assert stages["v1.1.0"] == ["production"]
    # The registry summary, `gto show --json`: the same stage holders.
    summary = json.loads(gto(repo, "show", "--json"))
    assert set(summary) == {"model"}  # the deprecated models:clf is hidden, as mlcd never lists it
    holders = {stage: version for version, held in mlcd_versions(repo) for stage in held}
    assert {k: v for k, v in summary["model"]["stage"].items() if v} == holders
    rows = json.loads(repo.mlcd("versions", "--json", "--all").stdout)
    deregistered = next(row for row in rows if row["version"] == "v1.0.0")
    assert deregistered["registered"] is False and deregistered["tag"] == "model@v1.0.0"
    table = repo.mlcd("versions", "--all").stdout
    assert "deregistered" in table and "production" in table


def test_restore_resolves_stages_tags_and_pre_releases(every_tag_kind, released, tmp_path):
    repo, (_, produced) = every_tag_kind, released
    for ref, version in (
        ("production", "1.1.0"),
        ("model#production", "1.1.0"),
        ("model#production#1", "1.1.0"),
        ("model@v1.2.0", "1.2.0"),
        ("1.3.0-rc.1+build.5", "1.2.0"),  # the candidate is the 1.2.0 model on a later commit
        ("model@latest", "1.2.0"),
    ):
        out = tmp_path / ref.replace("#", "_")
        done = repo.mlcd("restore", ref, "--out", str(out))
        assert bundle_bytes(out) == produced[version]["files"], (ref, done.stderr)
    done = repo.mlcd("restore", "1.0.0", check=False)
    assert done.returncode == 2
    assert "model@v1.0.0 was deregistered (model@v1.0.0! says so)" in done.stderr
    assert f"mlcd restore {produced['1.0.0']['commit'][:8]}" in done.stderr
    by_commit = tmp_path / "by-commit"  # a deregistered version's commit still comes back
    repo.mlcd("restore", produced["1.0.0"]["commit"][:8], "--out", str(by_commit))
    assert bundle_bytes(by_commit) == produced["1.0.0"]["files"]
    assert repo.run("git", "status", "--porcelain").stdout == ""


def test_release_writes_pre_releases_gto_reads(repo):
    repo.run("git", "commit", "-q", "--allow-empty", "-m", "candidate")
    done = repo.mlcd("release", "2.0.0-rc.1")
    assert "tagged model@v2.0.0-rc.1" in done.stderr
    assert gto_versions(repo)[0] == ("v2.0.0-rc.1", [])
    check = json.loads(gto(repo, "check-ref", "model@v2.0.0-rc.1", "--json"))
    assert check["version"] == "v2.0.0-rc.1" and check["event"] == "registration"


def test_promote_and_demote_write_tags_gto_reads(repo, released):
    _, produced = released
    done = repo.mlcd("promote", "1.1.0", "production", "--no-image-check")
    assert "tagged model#production#1: v1.1.0" in done.stderr
    assert "git push origin 'model#production#1'" in done.stderr
    check = json.loads(gto(repo, "check-ref", "model#production#1", "--json"))
    assert (check["event"], check["version"], check["stage"]) == ("assignment", "v1.1.0", "production")
    assert check["commit_hexsha"] == produced["1.1.0"]["commit"]
    assert dict(mlcd_versions(repo))["v1.1.0"] == ["production"]

    again = repo.mlcd("promote", "1.1.0", "production", "--no-image-check")  # idempotent: exit 0
    assert "model@v1.1.0 already holds production: nothing to do, no tag written" in again.stderr

    repo.mlcd("promote", "1.2.0", "production", "--no-image-check")
    assert dict(mlcd_versions(repo)) == dict(gto_versions(repo))
    assert dict(mlcd_versions(repo))["v1.2.0"] == ["production"]

    demoted = repo.mlcd("promote", "1.2.0", "production", "--demote")
    assert "tagged model#production!#3: v1.2.0 no longer holds production" in demoted.stderr
    assert mlcd_versions(repo) == gto_versions(repo)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("9.0.0", "production"), "model v9.0.0 is not registered (versions: v1.2.0, v1.1.0, v1.0.0)"),
        (("1.1.0", "prod"), "'prod' is not a stage of this project: use one of staging, production"),
        (("1.1.0", "production"), "promote checks that the image of commit"),
        (("1.2.0", "staging", "--demote"), "model@v1.2.0 is not in staging (no version holds it)"),
    ],
)
def test_promote_refuses_what_a_deploy_could_not_use(repo, args, message):
    done = repo.mlcd("promote", *args, check=False, env={"MLCD_IMAGE_REPO": ""})
    assert done.returncode == 2
    assert message in done.stderr
    assert "#" not in repo.run("git", "tag").stdout  # no stage tag was written


def test_promote_refuses_a_deregistered_version_and_unpushed_outputs(repo, released):
    _, produced = released
    gto(repo, "deprecate", "model", "v1.0.0")
    done = repo.mlcd("promote", "1.0.0", "staging", "--no-image-check", check=False)
    assert "model@v1.0.0 was deregistered" in done.stderr
    model_md5 = _bundle_file_md5(repo, produced["1.1.0"]["commit"], "model.onnx")
    (repo.remote / "files" / "md5" / model_md5[:2] / model_md5[2:]).unlink()
    done = repo.mlcd("promote", "1.1.0", "staging", "--no-image-check", check=False)
    assert done.returncode == 2
    assert "are not in remote 'local'" in done.stderr and "models/bundle/model.onnx" in done.stderr
    assert "#" not in repo.run("git", "tag").stdout


def _bundle_file_md5(repo: Repo, commit: str, name: str) -> str:
    import yaml

    lock = yaml.safe_load(repo.run("git", "show", f"{commit}:dvc.lock").stdout)
    md5 = lock["stages"]["package"]["outs"][0]["md5"]
    listing = json.loads((repo.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_text())
    return next(e["md5"] for e in listing if e["relpath"] == name)


def test_outside_the_project_is_one_clear_line(repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (("versions",), ("restore", "1.0.0"), ("promote", "1.0.0", "staging")):
        done = Repo(elsewhere).mlcd(*args, check=False)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr
        assert f"{elsewhere} is not an mlcd project (it has no dvc.yaml)" in done.stderr
    inside = repo.path / "src"
    done = Repo(inside).mlcd("versions", check=False)
    assert f"run it in {repo.path} or pass --repo {repo.path}" in done.stderr


def test_dvc_artifacts_get_and_gto_follow_mlcd_promotions(repo, released, tmp_path):
    """The peer tools on the same repo: `dvc artifacts get --stage` fetches what mlcd promoted."""
    _, produced = released
    repo.mlcd("promote", "1.1.0", "production", "--no-image-check")
    out = tmp_path / "by-dvc"
    repo.dvc("artifacts", "get", str(repo.path), "model", "--stage", "production", "-o", str(out))
    assert bundle_bytes(out) == produced["1.1.0"]["files"]
    shown = json.loads(gto(repo, "show", "model#production", "--json"))
    assert [v["version"] for v in shown] == ["v1.1.0"]
