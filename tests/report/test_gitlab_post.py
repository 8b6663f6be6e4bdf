"""Why a merge-request note is not posted, named for each way GitLab can fail (a fake GitLab API
on loopback). `mlcd report` turns the reason into a warning, keeps the report and its exit code:
tests/report/test_report.py shows that once end to end; here the reasons, in process."""

import pytest

# What GitLab does (status, seconds of delay) and a phrase of the reason given.
GITLAB_FAILURES = {
    "401": ((401, 0), "GitLab refused GITLAB_TOKEN (401)"),
    "404": ((404, 0), "GitLab found no project 7 or merge request !3 (404)"),
    "500": ((500, 0), "GitLab failed with 500"),
    "timeout": ((None, 3), "did not answer within 1 s"),
}


def not_posted(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    """Why `mlcd report` would not post, from the function it calls (no report is made)."""
    from mlcd.report.gitlab import NotPostedError, post, target_from_env

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(NotPostedError) as reason:
        post(target_from_env(), [], lambda links: "<!-- mlcd-report -->")
    return str(reason.value)


@pytest.mark.parametrize("failure", GITLAB_FAILURES)
def test_gitlab_failures_are_named(gitlab, monkeypatch, failure):
    fake, env = gitlab
    (fake.fail_with, fake.delay), message = GITLAB_FAILURES[failure]
    assert message in not_posted(monkeypatch, env)


REDIRECT = (302, {"location": "/users/sign_in", "content-length": "0"}, b"")  # a sign-in wall
PAGE = b"<html><body>Sign in</body></html>"  # a sign-in page in front of the API
HTML = (200, {"content-type": "text/html", "content-length": str(len(PAGE))}, PAGE)


@pytest.mark.parametrize(
    ("answer", "timeout", "message"),
    [
        (HTML, "1", "GitLab answered with something that is not its API's JSON"),
        (REDIRECT, "1", "GitLab redirected the request"),
        (None, "ten", "MLCD_GITLAB_TIMEOUT='ten' is not a number of seconds"),
        (None, "-1", "MLCD_GITLAB_TIMEOUT='-1' is not a number of seconds"),
    ],
    ids=["html-200", "redirect", "timeout-not-a-number", "timeout-negative"],
)
def test_odd_gitlab_answers_are_named(gitlab, monkeypatch, answer, timeout, message):
    fake, env = gitlab
    fake.raw = answer
    assert message in not_posted(monkeypatch, {**env, "MLCD_GITLAB_TIMEOUT": timeout})


def test_without_a_token_the_report_says_why(monkeypatch):
    env = {"CI_SERVER_URL": "http://127.0.0.1:9", "CI_PROJECT_ID": "7", "CI_MERGE_REQUEST_IID": "3"}
    said = not_posted(monkeypatch, {**env, "GITLAB_TOKEN": ""})
    assert "GITLAB_TOKEN is not set (GitLab's CI_JOB_TOKEN cannot post" in said
