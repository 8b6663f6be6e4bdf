"""The DVC remote a CI job uses, taken from CI/CD variables only.

The committed `.dvc/config` names a local-directory remote for developers; CI
replaces it in `.dvc/config.local` (which git ignores), so no URL or secret is in
the repository. Credentials stay in the environment, where DVC's backends read
them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for S3, GOOGLE_APPLICATION_CREDENTIALS
for GCS, AZURE_STORAGE_* for Azure).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REMOTE_NAME = "ci"
URL_VARIABLE = "DVC_REMOTE_URL"
# CI variable -> option of `dvc remote modify`, for S3-compatible stores and the like.
OPTION_VARIABLES = {
    "DVC_REMOTE_ENDPOINT_URL": "endpointurl",
    "DVC_REMOTE_REGION": "region",
}


def redacted(url: str) -> str:
    """The URL without any user:password part, fit for a job log."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def configure_remote(root: Path, env: Mapping[str, str]) -> str | None:
    """Make the remote in DVC_REMOTE_URL the default; None when the variable is unset."""
    url = env.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    from dvc.config import Config

    remote = {"url": url}
    remote |= {option: env[name] for name, option in OPTION_VARIABLES.items() if env.get(name)}
    config = Config(dvc_dir=str(root / ".dvc"))
    with config.edit("local") as local:
        local.setdefault("remote", {})[REMOTE_NAME] = remote
        local.setdefault("core", {})["remote"] = REMOTE_NAME
    extras = ", ".join(f"{option}={value}" for option, value in remote.items() if option != "url")
    return redacted(url) + (f" ({extras})" if extras else "")
