"""The DVC remote a CI job uses, taken from CI/CD variables only.

The committed `.dvc/config` names a local-directory remote for developers; CI
replaces it in `.dvc/config.local` (which git ignores), so no URL or secret is in
the repository. Credentials stay in the environment, where DVC's backends read
them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for S3, GOOGLE_APPLICATION_CREDENTIALS
for GCS, AZURE_STORAGE_* for Azure).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlcd.config import positive_seconds
from mlcd.console import info, warn
from mlcd.errors import PipelineError

REMOTE_NAME = "ci"
# How long the remote may stay silent before a CI job gives up on it (a firewall that drops
# packets, an endpoint that accepts and never answers: DVC's own retries wait minutes).
TIMEOUT_VARIABLE = "MLCD_REMOTE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
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


def remote_timeout(env: Mapping[str, str]) -> float:
    text = env.get(TIMEOUT_VARIABLE, "").strip() or str(DEFAULT_TIMEOUT)
    seconds = positive_seconds(text)
    if seconds is None:
        raise PipelineError(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds above 0 (e.g. 60)")
    return seconds


def probe_remote(root: Path, where: str, seconds: float) -> None:
    """Ask the default remote one question, and give up after `seconds` of silence with one line.

    Only silence is fatal here: a refusal (credentials, a missing bucket) is left to DVC, whose
    own message names it.
    """
    info(f"asking the DVC remote {where} (giving up after {seconds:g} s of silence: {TIMEOUT_VARIABLE})")
    outcome: dict[str, BaseException] = {}

    def ask() -> None:
        from dvc.repo import Repo

        try:
            with Repo(str(root)) as repo:
                remote = repo.cloud.get_remote()
                remote.fs.exists(remote.path)
        except Exception as exc:  # any refusal: DVC reports it properly when the pipeline runs
            outcome["error"] = exc

    asking = threading.Thread(target=ask, name="mlcd-remote-probe", daemon=True)
    asking.start()
    asking.join(seconds)
    if asking.is_alive():  # the daemon thread is abandoned; the process ends with the error
        raise PipelineError(
            f"the DVC remote {where} did not answer within {seconds:g} s: check {URL_VARIABLE} and "
            f"DVC_REMOTE_ENDPOINT_URL and that this runner can reach it, or raise {TIMEOUT_VARIABLE}"
        )
    if "error" in outcome:
        warn(f"the DVC remote {where} answered with an error; DVC will say more: {outcome['error']}")
