"""Tag pipelines as registry events: every tag kind, written by the `gto` CLI, through the real
.gitlab-ci.yml (gitlab-ci-local), and a promotion that deploys a version's image without a rebuild."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mlcd.container.podman import podman
from mlcd.deploy.podman_backend import PodmanBackend
from mlcd.versions.registry import stages

from ..helpers import PROJECT_ROOT, VENV_BIN, Repo, free_port_run
from ..system import install_nginx, install_podman
from .gitlab_ci_local import GitlabCiLocal, image_variables

pytestmark = [pytest.mark.ci, pytest.mark.needs_node]

TAG_ONLY = ("CI_COMMIT_BRANCH",)  # GitLab leaves it unset in tag pipelines
REGISTRATION_JOBS = {
    "check": "on_success",
    "reproduce": "on_success",
    "build": "on_success",
    "release": "on_success",
    "gitlab-release": "on_success",
}


def gto(repo: Repo, *args: str) -> None:
    repo.run(str(VENV_BIN / "gto"), *args)


def planned(gitlab: GitlabCiLocal, tag: str) -> dict[str, str]:
    jobs = gitlab.list_jobs({"CI_COMMIT_TAG": tag}, unset=TAG_ONLY)
    return {name: job["when"] for name, job in jobs.items() if job["when"] != "never"}


def test_each_tag_kind_plans_its_jobs(gitlab: GitlabCiLocal, developer: Repo):
    repo = developer
    repo.run("git", "commit", "-q", "--allow-empty", "-m", "candidate")
    gto(repo, "register", "model", "HEAD~1", "--version", "v1.0.0")
    gto(repo, "register", "model", "HEAD", "--version", "v1.1.0-rc.1+build.7")
    gto(repo, "assign", "model", "--version", "v1.0.0", "--stage", "staging")
    gto(repo, "assign", "model", "--version", "v1.0.0", "--stage", "production")
    gto(repo, "deprecate", "model", "v1.0.0", "staging")  # unassignment
    gto(repo, "deprecate", "model", "v1.0.0")  # deregistration
    gto(repo, "register", "models:other", "HEAD", "--version", "v0.1.0")  # another artifact
    gto(repo, "deprecate", "models:other")
    repo.run("git", "tag", "nightly")
    expected = {
        "model@v1.0.0": REGISTRATION_JOBS,
        "model@v1.1.0-rc.1+build.7": REGISTRATION_JOBS,
        "model#staging#1": {"deploy-staging": "on_success"},
        "model#production#2": {"deploy-production": "manual"},  # production waits for a click
        "model#staging!#3": {},
        "model@v1.0.0!": {},
        "models=other@v0.1.0": {},
        "models=other@deprecated": {},
        "nightly": {},
    }
    assert sorted(repo.run("git", "tag").stdout.split()) == sorted(expected)  # all made by gto/git
    assert {tag: planned(gitlab, tag) for tag in expected} == expected


def test_every_stage_has_its_deploy_job_and_the_patterns_name_the_artifact(gitlab: GitlabCiLocal):
    """.gto's stages and dvc.yaml's artifact name are written once; the CI rules must follow them."""
    ci = gitlab.preview()
    (artifact,) = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["artifacts"]
    for stage in stages(PROJECT_ROOT):
        job = ci[f"deploy-{stage}"]
        assert job["environment"]["name"] == stage
        assert any(f"/^{artifact}#{stage}#\\d+$/" in rule.get("if", "") for rule in job["rules"]), stage
    assert any(f"/^{artifact}@v" in rule.get("if", "") for rule in ci["release"]["rules"])
    release = ci["gitlab-release"]["release"]
    expected = {"tag_name": "$CI_COMMIT_TAG", "name": "$CI_COMMIT_TAG", "description": "release-notes.md"}
    assert release == expected


@pytest.mark.needs_podman
def test_a_stage_tag_deploys_that_versions_image_without_a_rebuild(
    gitlab: GitlabCiLocal, developer: Repo, registry, tmp_path: Path
):
    """Register v1.0.0 (its pipeline builds and pushes the image), move main on to another model,
    promote v1.0.0 to staging: the stage pipeline runs only deploy-staging, which serves v1.0.0."""
    install_podman()
    install_nginx()
    repo = developer
    port = free_port_run()
    path = "group/registry-events"
    variables = image_variables(registry, repo.remote, port, tmp_path / "staging", path=path)
    version_commit = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    version_bundle = json.loads((repo.path / "models" / "bundle" / "manifest.json").read_text())
    image = f"{registry.address}/{path}:{version_commit}"
    try:
        repo.mlcd("release", "1.0.0")
        registry_env = {
            "MLCD_IMAGE_REPO": variables["CI_REGISTRY_IMAGE"],
            "MLCD_REGISTRY_TLS_VERIFY": "false",
        }
        early = repo.mlcd("promote", "1.0.0", "staging", env=registry_env, check=False)
        assert early.returncode == 2  # the registry (real, on loopback) has no image of that commit yet
        assert f"image {image} is not in the registry: the pipeline of model@v1.0.0 builds" in early.stderr
        registration = gitlab.run(
            "reproduce",
            "build",
            "release",
            variables={**variables, "CI_COMMIT_TAG": "model@v1.0.0"},
            unset=TAG_ONLY,
        )
        assert registration.results == {"reproduce": "PASS", "build": "PASS", "release": "PASS"}, (
            registration.explain()
        )
        notes = next(
            (gitlab.project / ".gitlab-ci-local" / "artifacts" / "release").rglob("release-notes.md")
        )
        _check_release_notes(notes.read_text(), repo, version_commit, version_bundle["model_hash"])

        # main moves on: another model, reproduced and pushed, so the workspace is not v1.0.0's.
        repo.set_params(**{"train.logistic_regression.C": 0.05})
        repo.dvc("repro")
        repo.commit("smaller C")
        repo.dvc("push")
        newer = json.loads((repo.path / "models" / "bundle" / "manifest.json").read_text())["model_hash"]
        assert newer != version_bundle["model_hash"]

        promoted = repo.mlcd("promote", "1.0.0", "staging", env=registry_env)
        assert f"image {image} checked" in promoted.stderr
        pushed_at = time.monotonic()  # `git push origin model#staging#1` starts the pipeline here
        stage = gitlab.run(variables={**variables, "CI_COMMIT_TAG": "model#staging#1"}, unset=TAG_ONLY)
        seconds = time.monotonic() - pushed_at
        assert stage.results == {"deploy-staging": "PASS"}, stage.explain()  # no check, no build
        log = stage.log("deploy-staging")
        assert f"staging <- model@v1.0.0 (commit {version_commit[:8]}, tag model#staging#1)" in log
        assert f"staging: blue is live with {image}" in log

        record = json.loads((repo.path / "models" / "bundle" / "examples.json").read_text())["records"][0]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            json.dumps(record).encode(),
            {"content-type": "application/json"},
        )
        answer = json.load(urllib.request.urlopen(request, timeout=10))
        assert answer["model"]["hash"] == version_bundle["model_hash"]
        assert answer["model"]["git_commit"] == version_commit
        tags = json.load(urllib.request.urlopen(f"{registry.url}/v2/{path}/tags/list", timeout=10))
        assert tags["tags"] == [version_commit]  # built once, by the registration's pipeline
        print(f"\nstage tag pushed -> v1.0.0 serving on staging: {seconds:.1f} s")

        # A deregistration runs nothing, even with the stage tag's version deregistered.
        gto(repo, "deprecate", "model", "v1.0.0")
        nothing = gitlab.run(variables={**variables, "CI_COMMIT_TAG": "model@v1.0.0!"}, unset=TAG_ONLY)
        assert nothing.results == {}, nothing.explain()
    finally:
        PodmanBackend("staging", tmp_path / "staging", port).teardown()
        podman("rmi", "--force", image, check=False)


def _check_release_notes(notes: str, repo: Repo, commit: str, model_hash: str) -> None:
    """The description names the committed model: compared with what git holds at the tagged commit."""
    lock = yaml.safe_load(repo.run("git", "show", f"{commit}:dvc.lock").stdout)
    bundle_md5 = next(o["md5"] for o in lock["stages"]["package"]["outs"] if o["path"] == "models/bundle")
    metrics = json.loads(repo.run("git", "show", f"{commit}:metrics/metrics.json").stdout)
    assert f"registered by `model@v1.0.0` on commit `{commit}`" in notes
    assert f"what `/ready` reports) | `{model_hash}` |" in notes
    assert f"(DVC md5 in dvc.lock) | `{bundle_md5}` |" in notes
    assert f"| roc_auc | {metrics['roc_auc']:.6g} |" in notes
