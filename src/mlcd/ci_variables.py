"""What the CI server says about this build, from GitLab CI's or Jenkins' variables.

Every mlcd command that reads CI variables asks here, so GitLab and Jenkins (a multibranch
pipeline with the GitLab Branch Source plugin, or the GitLab plugin's webhook variables) give
the same answers: the same base for the report, the same sticky note, the same deploy target.
The first variable set wins, GitLab's names first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# GitLab CI, then Jenkins: the GitLab plugin's webhook variables, then Branch Source's CHANGE_*.
MERGE_REQUEST = ("CI_MERGE_REQUEST_IID", "gitlabMergeRequestIid", "CHANGE_ID")
TARGET_BRANCH = ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "gitlabTargetBranch", "CHANGE_TARGET")
DIFF_BASE = ("CI_MERGE_REQUEST_DIFF_BASE_SHA",)  # GitLab only; elsewhere the merge-base is computed
TAG = ("CI_COMMIT_TAG", "TAG_NAME")
COMMIT = ("CI_COMMIT_SHA", "GIT_COMMIT")
BRANCH = ("CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME", "CHANGE_BRANCH", "BRANCH_NAME")
# Jenkins knows neither the GitLab server nor the project id: the Jenkinsfile sets these two.
SERVER_URL = ("CI_SERVER_URL", "GITLAB_URL")
PROJECT = ("CI_PROJECT_ID", "GITLAB_PROJECT")  # an id or a path such as group/mlcd
DEFAULT_BRANCH = ("CI_DEFAULT_BRANCH", "MLCD_DEFAULT_BRANCH")
IMAGE_REPO_VARIABLE = "MLCD_IMAGE_REPO"  # outside GitLab: where CI pushes images, for promote and deploys
IMAGE_REPO = ("CI_REGISTRY_IMAGE", IMAGE_REPO_VARIABLE)


@dataclass(frozen=True)
class CiEnvironment:
    merge_request: str | None
    target_branch: str | None
    diff_base: str | None
    tag: str | None
    commit: str | None
    branch: str | None
    server_url: str | None
    project: str | None
    default_branch: str
    image_repo: str | None


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[name] for name in names if env.get(name)), None)


def ci_environment(env: Mapping[str, str] | None = None) -> CiEnvironment:
    env = os.environ if env is None else env
    return CiEnvironment(
        merge_request=_first(env, MERGE_REQUEST),
        target_branch=_first(env, TARGET_BRANCH),
        diff_base=_first(env, DIFF_BASE),
        tag=_first(env, TAG),
        commit=_first(env, COMMIT),
        branch=_first(env, BRANCH),
        server_url=_first(env, SERVER_URL),
        project=_first(env, PROJECT),
        default_branch=_first(env, DEFAULT_BRANCH) or "main",  # as .gitlab-ci.yml's rules and the README
        image_repo=_first(env, IMAGE_REPO),
    )
