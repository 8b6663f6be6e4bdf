"""What is deployed where: the live colour and the previous one, kept for rollback."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

COLOURS = ("blue", "green")


def other(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Slot:
    colour: str
    image: str
    model_hash: str
    deployed_at: str


@dataclass(frozen=True)
class DeployState:
    environment: str
    live: Slot
    previous: Slot | None
    switched_at: str
    port: int | None = None  # the public port (podman), so rollback and undeploy need not be told again

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeployState:
        data: dict[str, Any] = json.loads(text)
        previous = data.get("previous")
        return cls(
            environment=data["environment"],
            live=Slot(**data["live"]),
            previous=Slot(**previous) if previous else None,
            switched_at=data["switched_at"],
            port=data.get("port"),
        )
