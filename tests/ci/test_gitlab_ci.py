"""The real .gitlab-ci.yml, run by gitlab-ci-local: merge-request, default-branch and tag pipelines."""

from __future__ import annotations

import pytest

from ..conftest import Repo
from .gitlab_ci_local import GitlabCiLocal, merge_request

pytestmark = pytest.mark.ci

MR_UNSET = ("CI_COMMIT_BRANCH",)  # GitLab leaves it unset in merge-request pipelines
TAG = "model@v1.2.0"


def open_merge_request(repo: Repo, branch: str, **params: object) -> None:
    """A developer's branch: params changed, `dvc repro` run, lock committed, outputs pushed."""
    repo.run("git", "checkout", "-q", "-b", branch)
    repo.set_params(**params)
    repo.dvc("repro")
    repo.commit(f"{branch}: {params}")
    repo.dvc("push", "--run-cache")
    repo.run("git", "push", "-q", "origin", branch)


def when(jobs: dict[str, dict]) -> dict[str, str]:
    return {name: job["when"] for name, job in jobs.items() if job["when"] != "never"}


def test_rules_pick_the_jobs_of_each_pipeline(gitlab: GitlabCiLocal):
    mr = gitlab.list_jobs(merge_request(), unset=MR_UNSET)
    assert when(mr) == {name: "on_success" for name in ("check", "reproduce", "report", "build")}

    main = gitlab.list_jobs({"CI_COMMIT_BRANCH": "main"})
    assert when(main) == {
        "check": "on_success",
        "reproduce": "on_success",
        "build": "on_success",
        "deploy-staging": "on_success",
        "rollback-staging": "manual",
        "deploy-production": "manual",
        "rollback-production": "manual",
    }

    tag = gitlab.list_jobs({"CI_COMMIT_TAG": TAG}, unset=MR_UNSET)
    assert when(tag) == {
        "check": "on_success",
        "reproduce": "on_success",
        "build": "on_success",
        "deploy-production": "manual",
        "rollback-production": "manual",
        "release": "on_success",
    }
    not_a_release = gitlab.list_jobs({"CI_COMMIT_TAG": "nightly"}, unset=MR_UNSET)
    assert "release" not in when(not_a_release)

    # A push to a branch with an open MR: the MR pipeline runs, no duplicate branch pipeline.
    assert when(gitlab.list_jobs({"CI_COMMIT_BRANCH": "feature", "CI_OPEN_MERGE_REQUESTS": "g/p!3"})) == {}
    assert when(gitlab.list_jobs({"CI_COMMIT_BRANCH": "feature"})) == {}


def test_merge_request_with_a_param_change_passes_and_posts_the_note(
    gitlab: GitlabCiLocal, developer: Repo, fake_gitlab_api
):
    fake, url = fake_gitlab_api
    open_merge_request(developer, "smaller-c", **{"train.logistic_regression.C": 0.5})
    variables = {
        **merge_request(fake.merge_request),
        "CI_SERVER_URL": url,
        "CI_PROJECT_ID": fake.project,
        "GITLAB_TOKEN": "glpat-test-token",
    }
    run = gitlab.run("check", "reproduce", "report", variables=variables, unset=MR_UNSET)
    assert run.results == {"check": "PASS", "reproduce": "PASS", "report": "PASS"}, run.explain()
    assert "dvc.lock verified" in run.log("reproduce")
    assert [request.headers.get("private-token") for request in fake.requests if request.method != "GET"]
    (note,) = fake.notes.values()
    assert "<!-- mlcd-report -->" in note
    assert "| train.logistic_regression.C | 1.0 | 0.5 |" in note
    junit = gitlab.project / ".gitlab-ci-local" / "artifacts" / "check"
    assert list(junit.rglob("junit.xml")) and list(junit.rglob("coverage.xml")), "check reports missing"
