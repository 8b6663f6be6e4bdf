"""The blue/green state machine, written once for every backend.

deploy: start the image in the idle colour, wait for /ready, smoke-test it with
the bundle's example records, then switch traffic and record the state. If any
step before the switch fails, traffic never moved; the idle colour is put back
to what it ran before (the rollback target), and the error says what failed.
rollback: switch traffic back to the previous colour, which was kept running.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlcd.bundle import Examples, answers_match, open_bundle
from mlcd.console import info, working
from mlcd.deploy.state import COLOURS, DeployState, Slot, now, other
from mlcd.errors import DeployError, MlcdError


class Backend(Protocol):
    """Where colours run and how traffic reaches them."""

    environment: str

    def read_state(self) -> DeployState | None: ...
    def start(self, colour: str, image: str) -> None: ...
    def wait_ready(self, colour: str, timeout: float) -> str:
        """Block until the colour answers /ready; return the model hash it serves."""
        ...

    def predict(self, colour: str, records: list[dict[str, Any]]) -> dict[str, Any]: ...
    def switch(self, state: DeployState) -> None:
        """Send all traffic to state.live's colour and record the state, as one step."""
        ...

    def stop(self, colour: str) -> None: ...


@dataclass(frozen=True)
class Expected:
    """What the image must serve: the bundle it was built from."""

    model_hash: str
    examples: Examples
    classes: list[str]

    @classmethod
    def from_bundle(cls, bundle: Path) -> Expected:
        opened = open_bundle(bundle)
        return cls(opened.model_hash, opened.examples, opened.classes)


def smoke_test(backend: Backend, colour: str, expected: Expected, served_hash: str) -> int:
    if served_hash != expected.model_hash:
        raise DeployError(
            f"the {colour} colour serves model {served_hash[:12]}, but the bundle is "
            f"{expected.model_hash[:12]}: was the image built from this bundle?"
        )
    records = expected.examples.records
    answer = backend.predict(colour, records)
    if not answers_match(answer, expected.examples, expected.classes):
        raise DeployError(f"the {colour} colour answers the bundle's {len(records)} example records wrongly")
    return len(records)


def start_idle(
    backend: Backend, state: DeployState | None, image: str, expected: Expected, timeout: float
) -> Slot:
    """Start `image` in the colour `state` leaves idle, ready and smoke-tested, taking no traffic yet."""
    colour = other(state.live.colour) if state else COLOURS[0]
    info(f"deploying {image} to the idle colour {colour} ({backend.environment})")
    try:
        with working(f"starting {colour} and waiting for its /ready (up to {timeout:.0f} s)"):
            backend.start(colour, image)
            served = backend.wait_ready(colour, timeout)
        checked = smoke_test(backend, colour, expected, served)
    except MlcdError as exc:
        restore_idle(backend, state, colour, timeout)
        live = f"{state.live.colour} ({state.live.image}) keeps serving" if state else "nothing was serving"
        raise DeployError(f"deploy of {image} failed, traffic not switched; {live}: {exc}") from None
    info(f"{colour} is ready and answered {checked} example records like the bundle")
    return Slot(colour, image, served, now())


def promote(backend: Backend, candidate: Slot, state: DeployState | None) -> DeployState:
    """All traffic to the candidate; what was live stays running as the rollback target."""
    new = DeployState(
        environment=backend.environment,
        live=candidate,
        previous=state.live if state else None,
        switched_at=now(),
    )
    backend.switch(new)
    return new


def deploy(backend: Backend, image: str, expected: Expected, timeout: float = 60.0) -> DeployState:
    state = backend.read_state()
    return promote(backend, start_idle(backend, state, image, expected, timeout), state)


def restore_idle(backend: Backend, state: DeployState | None, colour: str, timeout: float) -> None:
    """Put the idle colour back to the previous release, so rollback still has a target."""
    if state is None or state.previous is None or state.previous.colour != colour:
        backend.stop(colour)
        return
    info(f"restoring {colour} to {state.previous.image}, the rollback target")
    backend.start(colour, state.previous.image)
    backend.wait_ready(colour, timeout)


def rollback(backend: Backend, timeout: float = 60.0) -> DeployState:
    state = backend.read_state()
    if state is None:
        raise DeployError(f"nothing is deployed to {backend.environment}: there is nothing to roll back")
    if state.previous is None:
        raise DeployError(
            f"{backend.environment} has no previous release to roll back to (only {state.live.image})"
        )
    target = state.previous
    try:
        served = backend.wait_ready(target.colour, timeout)
    except MlcdError as exc:
        raise DeployError(
            f"the previous colour {target.colour} is not ready, traffic not switched: {exc}"
        ) from None
    if served != target.model_hash:
        raise DeployError(
            f"{target.colour} serves model {served[:12]}, not {target.model_hash[:12]} as recorded; "
            "not switching"
        )
    new = DeployState(backend.environment, live=target, previous=state.live, switched_at=now())
    backend.switch(new)
    return new
