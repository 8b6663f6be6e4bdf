"""GitLab CI's and Jenkins' variables mean the same build to mlcd (src/mlcd/ci_variables.py)."""

from mlcd.ci_variables import ci_environment

GITLAB_MR = {
    "GITLAB_CI": "true",
    "CI_MERGE_REQUEST_IID": "3",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    "CI_COMMIT_SHA": "a" * 40,
    "CI_COMMIT_REF_NAME": "smaller-c",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_ID": "group/mlcd",
    "CI_REGISTRY_IMAGE": "registry.example.com/group/mlcd",
}
# A multibranch pipeline with GitLab Branch Source (CHANGE_*), and the Jenkinsfile's own variables.
JENKINS_MR = {
    "JENKINS_URL": "https://jenkins.example.com/",
    "BRANCH_NAME": "MR-3",
    "CHANGE_ID": "3",
    "CHANGE_TARGET": "main",
    "CHANGE_BRANCH": "smaller-c",
    "GIT_COMMIT": "a" * 40,
    "GITLAB_URL": "https://gitlab.example.com",
    "GITLAB_PROJECT": "group/mlcd",
    "MLCD_IMAGE_REPO": "registry.example.com/group/mlcd",
}
# The GitLab plugin's webhook variables, for freestyle or plain pipeline jobs.
JENKINS_GITLAB_PLUGIN = {
    **{k: v for k, v in JENKINS_MR.items() if not k.startswith("CHANGE_")},
    "gitlabMergeRequestIid": "3",
    "gitlabTargetBranch": "main",
    "CHANGE_BRANCH": "smaller-c",
}


def test_a_merge_request_reads_the_same_from_gitlab_and_jenkins():
    gitlab = ci_environment(GITLAB_MR)
    assert ci_environment(JENKINS_MR) == gitlab
    assert ci_environment(JENKINS_GITLAB_PLUGIN) == gitlab
    assert (gitlab.merge_request, gitlab.target_branch, gitlab.branch) == ("3", "main", "smaller-c")


def test_tags_and_the_default_branch():
    assert ci_environment({"CI_COMMIT_TAG": "model#staging#1"}).tag == "model#staging#1"
    assert ci_environment({"TAG_NAME": "model#staging#1"}).tag == "model#staging#1"
    assert ci_environment({}).default_branch == "main"
    assert ci_environment({"CI_DEFAULT_BRANCH": "trunk"}).default_branch == "trunk"
    assert ci_environment({"BRANCH_NAME": "main"}).branch == "main"
