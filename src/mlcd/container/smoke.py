"""Run an image on a loopback port and check it answers like the bundle on disk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.bundle import Examples, answers_match, as_examples, open_bundle
from mlcd.container.podman import podman, remove_container, start_container
from mlcd.errors import ContainerError
from mlcd.http_client import free_port, http_json, wait_ready


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
            wait_ready(url, timeout, ContainerError)
        except ContainerError as exc:
            logs = podman("logs", name, check=False)
            raise ContainerError(f"{exc}; container log:\n{logs.stdout}{logs.stderr}") from None
        yield RunningContainer(name, url, time.monotonic() - started)
    finally:
        remove_container(name, grace_seconds=5)


def container_uid(name: str) -> int:
    """The uid of the server process (PID 1), read by Python inside the container."""
    code = "print(open('/proc/1/status').read().split('Uid:')[1].split()[0])"
    return int(podman("exec", name, "python3", "-c", code).stdout.strip())


def expected_answers(bundle: Path, records: list[dict[str, Any]]) -> tuple[Examples, list[str]]:
    """The bundle's own answers to `records` (as examples.json holds answers) and its classes."""
    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import to_batch

    model = BundleModel(bundle)
    batch = to_batch(records, model.layout, len(records))
    answers = as_examples(model.predict(batch.numbers, batch.texts), model.classes)
    return Examples(records=records, **answers), model.classes


def smoke_test(container: RunningContainer, bundle: Path, records: list[dict[str, Any]] | None = None) -> int:
    """Post records (default: the bundle examples); answers must match in-process ONNX. Returns the count."""
    if records is None:
        records = open_bundle(bundle).examples.records
    answer = http_json(f"{container.url}/predict", records)
    expected, classes = expected_answers(bundle, records)
    if not answers_match(answer, expected, classes):
        raise ContainerError(f"{container.name} answers differently from the bundle in {bundle}")
    if container_uid(container.name) == 0:
        raise ContainerError(f"{container.name} runs its server as root")
    return len(records)
