"""A fake GitLab API on loopback, for the report's note (tests/report/fake_gitlab.py)."""

from collections.abc import Iterator

import pytest

from . import fake_gitlab


@pytest.fixture
def gitlab() -> Iterator[tuple[fake_gitlab.FakeGitLab, dict[str, str]]]:
    fake = fake_gitlab.FakeGitLab()
    server, url = fake_gitlab.start(fake)
    env = {
        "CI_SERVER_URL": url,
        "CI_PROJECT_ID": "7",
        "CI_MERGE_REQUEST_IID": "3",
        "GITLAB_TOKEN": "glpat-secret",
        "MLCD_GITLAB_TIMEOUT": "1",
    }
    yield fake, env
    server.shutdown()
