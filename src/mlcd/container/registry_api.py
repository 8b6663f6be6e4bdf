"""Does an image exist in its registry? One HEAD request on the Docker Registry HTTP API v2.

`mlcd promote` asks before writing a stage tag, so a stage is never given a version whose image
no pipeline built. Registries that want a token (GitLab's) answer 401 with a Bearer challenge;
the token is fetched with MLCD_REGISTRY_USER / MLCD_REGISTRY_PASSWORD when set (CI: the job's
CI_REGISTRY_USER / CI_REGISTRY_PASSWORD), anonymously otherwise. Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from mlcd.errors import ContainerError

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
USER_ENV, PASSWORD_ENV = "MLCD_REGISTRY_USER", "MLCD_REGISTRY_PASSWORD"
# Plain HTTP for a registry without TLS (a loopback or lab registry), as buildah's --tls-verify=false.
TLS_VERIFY_ENV = "MLCD_REGISTRY_TLS_VERIFY"


def split_reference(reference: str) -> tuple[str, str, str]:
    """(registry host, repository path, tag) of `host[:port]/path:tag`."""
    name, _, tag = reference.rpartition(":")
    host, _, path = name.partition("/")
    if not name or "/" in tag or not path or not ("." in host or ":" in host or host == "localhost"):
        raise ContainerError(
            f"{reference!r} is not a registry image reference: expected HOST[:PORT]/PATH:TAG, "
            "e.g. registry.example.com/group/mlcd:<commit>"
        )
    return host, path, tag


def image_exists(reference: str, env: Mapping[str, str] = os.environ, timeout: float = 15.0) -> bool:
    host, path, tag = split_reference(reference)
    scheme = "http" if env.get(TLS_VERIFY_ENV, "true").lower() == "false" else "https"
    url = f"{scheme}://{host}/v2/{path}/manifests/{tag}"
    headers = {"Accept": MANIFEST_TYPES}
    try:
        return _head(url, headers, timeout)
    except urllib.error.HTTPError as exc:
        challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
        if not challenge.lower().startswith("bearer"):
            raise _unreachable(reference, exc) from None
        token = _token(challenge, env, timeout)
        try:
            return _head(url, {**headers, "Authorization": f"Bearer {token}"}, timeout)
        except urllib.error.HTTPError as again:
            raise _unreachable(reference, again) from None
    except OSError as exc:
        raise _unreachable(reference, exc) from None


def _head(url: str, headers: dict[str, str], timeout: float) -> bool:
    request = urllib.request.Request(url, headers=headers, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def _token(challenge: str, env: Mapping[str, str], timeout: float) -> str:
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
    request = urllib.request.Request(f"{fields.get('realm', '')}?{query}")
    if env.get(USER_ENV):
        pair = f"{env[USER_ENV]}:{env.get(PASSWORD_ENV, '')}".encode()
        request.add_header("Authorization", f"Basic {base64.b64encode(pair).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise ContainerError(f"the registry's token service {fields.get('realm')} refused: {exc}") from None
    return str(answer.get("token") or answer.get("access_token") or "")


def _unreachable(reference: str, exc: Exception) -> ContainerError:
    return ContainerError(
        f"cannot ask the registry whether {reference} exists: {exc}. Check the address, "
        f"{USER_ENV}/{PASSWORD_ENV}, and {TLS_VERIFY_ENV}=false for a plain-HTTP registry"
    )
