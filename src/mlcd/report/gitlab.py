"""Post the report as one sticky merge-request note, with its PNGs uploaded to the project.

GitLab's CI_JOB_TOKEN cannot write notes, so a project or personal access token
(api scope) must be in GITLAB_TOKEN. Without one, or when GitLab fails, the
caller keeps the report in its output directory and the job log.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gitlab
import requests

from mlcd.config import positive_seconds
from mlcd.report.render import MARKER

TIMEOUT_VARIABLE = "MLCD_GITLAB_TIMEOUT"


def timeout_seconds() -> float:
    """Seconds to wait for each GitLab request; a malformed value is a reason not to post, not a crash."""
    text = os.environ.get(TIMEOUT_VARIABLE, "10")
    seconds = positive_seconds(text)
    if seconds is None:
        raise NotPostedError(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds above 0 (e.g. 10)")
    return seconds


@dataclass(frozen=True)
class Target:
    url: str
    project: str
    merge_request: int
    token: str


@dataclass(frozen=True)
class Posted:
    note_id: int
    created: bool
    links: dict[str, str]


class NotPostedError(Exception):
    """Why the note was not posted; the report itself is still written."""


def target_from_env(merge_request_needed: bool = True) -> Target:
    """Where to post, from CI's variables; without merge_request_needed, the project alone
    (merge_request 0), for opening one."""
    from mlcd.ci_variables import MERGE_REQUEST, PROJECT, SERVER_URL, ci_environment

    env = os.environ
    if not env.get("GITLAB_TOKEN"):
        raise NotPostedError(
            "GITLAB_TOKEN is not set (GitLab's CI_JOB_TOKEN cannot post merge-request notes; add a masked "
            "project access token with api scope as a CI/CD variable)"
        )
    ci = ci_environment()
    needed: dict[tuple[str, ...], str | None] = {SERVER_URL: ci.server_url, PROJECT: ci.project}
    if merge_request_needed:
        needed[MERGE_REQUEST] = ci.merge_request
    absent = [" or ".join(names) for names, value in needed.items() if not value]
    if absent:
        what = "a merge-request pipeline" if merge_request_needed else "a GitLab pipeline"
        raise NotPostedError(f"not {what} ({'; '.join(absent)} unset)")
    assert ci.server_url and ci.project  # checked above; for mypy
    return Target(ci.server_url, ci.project, int(ci.merge_request or 0), env["GITLAB_TOKEN"])


def _explain(exc: Exception, target: Target) -> str:
    if isinstance(exc, gitlab.exceptions.RedirectError | requests.exceptions.TooManyRedirects):
        return (
            f"GitLab redirected the request ({exc}): CI_SERVER_URL {target.url} is probably not the API's "
            "address (http instead of https, or a sign-in page in front)"
        )
    if isinstance(exc, gitlab.exceptions.GitlabParsingError):
        return (
            f"GitLab answered with something that is not its API's JSON (an HTML page from a proxy or a "
            f"sign-in page?): check CI_SERVER_URL {target.url}"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return f"GitLab at {target.url} did not answer within {timeout_seconds():g} s"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"cannot reach GitLab at {target.url}: {exc.__class__.__name__}"
    code = getattr(exc, "response_code", None)
    if code == 401:
        return "GitLab refused GITLAB_TOKEN (401): it is wrong or expired; it needs the api scope"
    if code == 403:
        return "GITLAB_TOKEN may not post on this merge request (403): give it the Reporter role or higher"
    if code == 404:
        return (
            f"GitLab found no project {target.project} or merge request !{target.merge_request} (404): "
            "check CI_PROJECT_ID, CI_MERGE_REQUEST_IID and that the token can see the project"
        )
    if code is not None and code >= 500:
        return f"GitLab failed with {code}; the next pipeline will try again"
    return f"GitLab answered {code}: {exc}"


def post(target: Target, images: list[Path], body_for: Callable[[dict[str, str]], str]) -> Posted:
    """Upload images, then create the note or update the one carrying the report marker."""
    client = gitlab.Gitlab(target.url, private_token=target.token, timeout=timeout_seconds())
    try:
        return _post(client, target, images, body_for)
    except (gitlab.exceptions.GitlabError, requests.exceptions.RequestException) as exc:
        raise NotPostedError(_explain(exc, target)) from None


def open_merge_request(target: Target, source: str, into: str, title: str, description: str) -> int:
    """Open a merge request of branch `source` into `into`; its iid."""
    client = gitlab.Gitlab(target.url, private_token=target.token, timeout=timeout_seconds())
    request = {"source_branch": source, "target_branch": into, "title": title, "description": description}
    try:
        created = client.projects.get(target.project, lazy=True).mergerequests.create(request)
    except (gitlab.exceptions.GitlabError, requests.exceptions.RequestException) as exc:
        raise NotPostedError(_explain(exc, target)) from None
    return int(created.iid)


def _field(answer: object, key: str) -> str:
    """A field of GitLab's JSON answer; python-gitlab hands back the raw response when it is not JSON."""
    if not isinstance(answer, dict) or not isinstance(answer.get(key), str):
        raise gitlab.exceptions.GitlabParsingError(f"no {key!r} in GitLab's answer")
    return str(answer[key])


def _post(
    client: gitlab.Gitlab, target: Target, images: list[Path], body_for: Callable[[dict[str, str]], str]
) -> Posted:
    project = client.projects.get(target.project, lazy=True)
    links = {}
    for image in images:
        uploaded = project.upload(image.name, filedata=image.read_bytes())
        links[image.stem] = _field(uploaded, "url")
    body = body_for(links)
    merge_request = project.mergerequests.get(target.merge_request, lazy=True)
    for note in merge_request.notes.list(iterator=True):
        if MARKER in (note.body or ""):
            note.body = body
            note.save()
            return Posted(note.id, created=False, links=links)
    note = merge_request.notes.create({"body": body})
    return Posted(note.id, created=True, links=links)
