"""Talking JSON to a model server on loopback: a free port, one request, waiting for /ready.

Standard library only, so deploy backends and smoke tests carry no numpy or HTTP client.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from mlcd.errors import MlcdError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, body: Any = None, timeout: float = 10.0) -> Any:
    """GET `url` (POST `body` as JSON when given) and return the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(url: str, timeout: float, error: type[MlcdError] = MlcdError) -> float:
    """Seconds until GET `url`/ready answered 200, or `error` after `timeout` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            http_json(f"{url}/ready", timeout=1.0)
            return time.monotonic() - started
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            time.sleep(0.05)
    raise error(f"{url}/ready did not answer within {timeout:.0f} s")
