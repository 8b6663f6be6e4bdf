"""The deploy tests' images and traffic, built once for every module that deploys with podman
(tests/conftest.py puts podman's tests in one xdist group, so one test process builds them).

v1 and v2 are images of two different models; v3 is v2 with a tampered bundle file, so its server
refuses to start and never answers /ready. The faulty candidates are v2 with a fault switched on
on every request but the bundle's five example records (the deploy's smoke test passes, live
traffic does not): 20 % of answers a
500, every answer 50 ms late, or every label the same class.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mlcd.container.image import build
from mlcd.container.podman import podman

from ..helpers import Repo, clone_repo
from ..system import install_nginx, install_podman

ENVIRONMENT = "pytest"
FAULTS = ("error", "slow", "skew")
# Loaded by the image's Python at start (PYTHONPATH): wraps the model's answer with the fault
# (BundleModel.answer: what the API calls, and what predict calls).
FAULT_HOOK = """\
import os, random, time
from mlcd.serve import model

_answer = model.BundleModel.answer
FAULT = os.environ["MLCD_TEST_FAULT"]
EXAMPLES = 5  # the bundle's example records: the server's self-check and the deploy's smoke test


def answer(self, numbers, texts):
    live = len(numbers) != EXAMPLES
    if live and FAULT == "error" and random.random() < 0.2:
        raise RuntimeError("injected fault")
    if live and FAULT == "slow":
        time.sleep(0.05)
    result, values = _answer(self, numbers, texts)
    if live and FAULT == "skew":
        result["labels"] = ["malignant"] * len(result["labels"])
    return result, values


model.BundleModel.answer = answer
"""


@dataclass(frozen=True)
class Release:
    image: str
    bundle: Path
    model_hash: str


def _release(repo: Repo, tag: str) -> Release:
    bundle = repo.path / "models" / "bundle"
    build(repo.path, tag, local_base=True, base=None, runtime=None)
    return Release(tag, bundle, json.loads((bundle / "manifest.json").read_text())["model_hash"])


@pytest.fixture(scope="package")
def releases(reproduced_repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Release]]:
    install_podman()
    install_nginx()
    v1 = _release(reproduced_repo, "localhost/mlcd-deploy:v1")
    other = clone_repo(reproduced_repo, tmp_path_factory.mktemp("deploy") / "repo")
    other.set_params(**{"train.logistic_regression.C": 0.5})
    other.dvc("repro")
    v2 = _release(other, "localhost/mlcd-deploy:v2")
    assert v1.model_hash != v2.model_hash
    broken = tmp_path_factory.mktemp("broken")
    (broken / "Containerfile").write_text(
        f"FROM {v2.image}\nUSER 0\nRUN echo '# tampered' >> /opt/mlcd/bundle/schema.json\nUSER 10001:10001\n"
    )
    podman("build", "--tag", "localhost/mlcd-deploy:v3-broken", str(broken))
    v3 = Release("localhost/mlcd-deploy:v3-broken", v2.bundle, v2.model_hash)
    yield {"v1": v1, "v2": v2, "v3": v3}
    for release in (v1, v2, v3):
        podman("rmi", "--force", release.image, check=False)


@dataclass
class Load:
    """Clients posting a body in a loop; each answer's model, colour and time kept.

    Each client waits `pause` between answers: a few hundred requests a second, more than any
    canary step or shadow needs, instead of a flood whose clients burned a core the suite's other
    process needed (these tests run beside it)."""

    url: str
    record: dict | list
    clients: int = 4
    pause: float = 0.01
    answered: list[str] = field(default_factory=list)  # model hash per successful answer, in order
    failed: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # every answer's, failed ones too
    labels: list[list[str]] = field(default_factory=list)  # each successful answer's
    colours: list[str] = field(default_factory=list)  # X-Mlcd-Colour of each answer
    _stop: threading.Event = field(default_factory=threading.Event)

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post("/predict", json=self.record)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                    continue
                finally:
                    self.seconds.append(time.perf_counter() - started)
                self.colours.append(response.headers.get("x-mlcd-colour", "?"))
                if response.status_code == 200:
                    body = response.json()
                    self.answered.append(body["model"]["hash"])
                    self.labels.append(body.get("labels", []))
                else:
                    self.failed.append(f"{response.status_code} {response.text[:200]}")
                self._stop.wait(self.pause)

    @property
    def total(self) -> int:
        return len(self.answered) + len(self.failed)

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in self.threads:
            thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)
        self._stop.set()
        for thread in self.threads:
            thread.join(15)


@pytest.fixture(scope="package")
def faulty(
    releases: dict[str, Release], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Release]]:
    v2 = releases["v2"]
    built = {}
    for fault in FAULTS:
        context = tmp_path_factory.mktemp(f"fault-{fault}")
        (context / "sitecustomize.py").write_text(FAULT_HOOK)
        (context / "Containerfile").write_text(
            f"FROM {v2.image}\nCOPY sitecustomize.py /opt/fault/sitecustomize.py\n"
            f"ENV PYTHONPATH=/opt/fault:$PYTHONPATH MLCD_TEST_FAULT={fault}\n"
        )
        tag = f"localhost/mlcd-deploy:v2-{fault}"
        podman("build", "--tag", tag, str(context))
        built[fault] = Release(tag, v2.bundle, v2.model_hash)
    yield built
    for release in built.values():
        podman("rmi", "--force", release.image, check=False)
