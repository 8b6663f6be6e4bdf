"""Run an image on a loopback port and check it answers like the bundle on disk."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlcd.container.podman import podman, start_container
from mlcd.errors import ContainerError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(url: str, timeout: float) -> float:
    """Seconds until GET /ready answered 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            http_json(f"{url}/ready", timeout=1.0)
            return time.monotonic() - started
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            time.sleep(0.05)
    raise ContainerError(f"{url}/ready did not answer within {timeout:.0f} s")


@dataclass(frozen=True)
class RunningContainer:
    name: str
    url: str
    ready_seconds: float


@contextmanager
def running(image: str, name: str, timeout: float = 60.0) -> Iterator[RunningContainer]:
    port = free_port()
    started = time.monotonic()
    start_container(name, image, port)
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, timeout)
        except ContainerError as exc:
            logs = podman("logs", name, check=False)
            raise ContainerError(f"{exc}; container log:\n{logs.stdout}{logs.stderr}") from None
        yield RunningContainer(name, url, time.monotonic() - started)
    finally:
        podman("rm", "--force", "--ignore", "--time", "5", name, check=False)


def container_uid(name: str) -> int:
    """The uid of the server process (PID 1), read by Python inside the container."""
    code = "print(open('/proc/1/status').read().split('Uid:')[1].split()[0])"
    return int(podman("exec", name, "python3", "-c", code).stdout.strip())


def expected_answers(bundle: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import to_batch

    model = BundleModel(bundle)
    batch = to_batch(records, model.features, len(records))
    return model.predict(batch.numbers, batch.texts)


def smoke_test(container: RunningContainer, bundle: Path, records: list[dict[str, Any]] | None = None) -> int:
    """Post records (default: the bundle examples); answers must match in-process ONNX. Returns the count."""
    if records is None:
        records = json.loads((bundle / "examples.json").read_text())["records"]
    answer = http_json(f"{container.url}/predict", records)
    expected = expected_answers(bundle, records)
    if "labels" in expected:
        same = answer["labels"] == expected["labels"] and np.allclose(
            [list(p.values()) for p in answer["probabilities"]],
            [list(p.values()) for p in expected["probabilities"]],
            atol=1e-6,
        )
    else:
        same = np.allclose(answer["predictions"], expected["predictions"], rtol=1e-6)
    if not same:
        raise ContainerError(f"{container.name} answers differently from the bundle in {bundle}")
    if container_uid(container.name) == 0:
        raise ContainerError(f"{container.name} runs its server as root")
    return len(records)
