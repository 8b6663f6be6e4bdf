"""Blue/green on one host: two podman containers on loopback ports behind nginx on the public port.

Ports: nginx listens on `port`; blue on port+1, green on port+2 (127.0.0.1 only).
State: `state.json` in the state directory, written after nginx has switched.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlcd.container.podman import podman, remove_container, start_container
from mlcd.deploy.nginx import ROLLOUT_METRICS, Nginx, Routing
from mlcd.deploy.rollout_record import RolloutRecord
from mlcd.deploy.state import COLOURS, DeployState
from mlcd.errors import DeployError
from mlcd.http_client import http_json

DEFAULT_PORT = 8080
SCRAPE_TARGETS = "prometheus-targets.json"
ROLLOUT_FILE = "rollout.json"
# How long a switch waits for nginx's new workers to take over: `nginx -s reload` returns before
# they do, and until then the old colour still answers new connections.
SWITCH_SECONDS = 10.0


def recorded_port(state_dir: Path) -> int:
    """The public port the environment's last deploy used (state.json), else the default."""
    state_file = state_dir / "state.json"
    if state_file.is_file():
        port = DeployState.from_json(state_file.read_text(encoding="utf-8")).port
        if port is not None:
            return port
    return DEFAULT_PORT


@dataclass
class PodmanBackend:
    environment: str
    state_dir: Path
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.nginx = Nginx(self.state_dir, self.host, self.port)
        self._routing: Routing | None = None  # what route() last set: save_rollout keeps it
        self._metrics: str | None = None  # the rollout's gauges nginx serves; read once, then kept
        self.write_scrape_targets()

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def container(self, colour: str) -> str:
        return f"mlcd-{self.environment}-{colour}"

    def colour_port(self, colour: str) -> int:
        return self.port + 1 + COLOURS.index(colour)

    def url(self, colour: str) -> str:
        return f"http://127.0.0.1:{self.colour_port(colour)}"

    def read_state(self) -> DeployState | None:
        if not self.state_file.exists():
            return None
        return DeployState.from_json(self.state_file.read_text(encoding="utf-8"))

    def start(self, colour: str, image: str) -> None:
        start_container(
            self.container(colour), image, self.colour_port(colour),
            "--label", f"io.mlcd.environment={self.environment}", "--label", f"io.mlcd.colour={colour}",
            "--read-only", "--tmpfs", "/tmp",
        )  # fmt: skip

    def _running(self, colour: str) -> bool:
        done = podman("inspect", "--format", "{{.State.Running}}", self.container(colour), check=False)
        return done.returncode == 0 and done.stdout.strip() == "true"

    def wait_ready(self, colour: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._running(colour):
                logs = podman("logs", "--tail", "20", self.container(colour), check=False)
                raise DeployError(
                    f"container {self.container(colour)} is not running; its last log lines:\n"
                    f"{(logs.stdout + logs.stderr).strip()}"
                )
            try:
                return str(http_json(f"{self.url(colour)}/ready", timeout=2)["model_hash"])
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                time.sleep(0.2)
        raise DeployError(f"{self.container(colour)} did not answer /ready within {timeout:.0f} s")

    def predict(self, colour: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = http_json(f"{self.url(colour)}/predict", records, timeout=30)
            return answer
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise DeployError(f"{self.container(colour)} failed the smoke request: {exc}") from None

    def switch(self, state: DeployState) -> None:
        self._routing = Routing(state.live.colour, self.ports())
        generation = self.nginx.route(replace(self._routing, metrics=self._rollout_metrics()))
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(replace(state, port=self.port).to_json(), encoding="utf-8")
        tmp.replace(self.state_file)
        self._wait_for_proxy(generation, f"the switch to {state.live.colour}")
        self.nginx.wait_drained(SWITCH_SECONDS)  # no request after this returns meets the old routing

    def ports(self) -> dict[str, int]:
        return {colour: self.colour_port(colour) for colour in COLOURS}

    def route(self, routing: Routing) -> None:
        """Split or mirror traffic (a canary's step, a shadow); the recorded state is not changed."""
        self._routing = replace(routing, ports=self.ports())
        generation = self.nginx.route(replace(self._routing, metrics=self._rollout_metrics()))
        self._wait_for_proxy(generation, "the new routing")
        # No request after this returns meets the old routing, and a colour taken out of it may be
        # stopped next: its last requests have been answered.
        self.nginx.wait_drained(SWITCH_SECONDS)

    @property
    def rollout_file(self) -> Path:
        return self.state_dir / ROLLOUT_FILE

    def read_rollout(self) -> RolloutRecord | None:
        if not self.rollout_file.is_file():
            return None
        return RolloutRecord.from_json(self.rollout_file.read_text(encoding="utf-8"))

    def save_rollout(self, record: RolloutRecord) -> None:
        """Record the rollout, and export its gauges through nginx (a graceful reload, as a step's)."""
        tmp = self.rollout_file.with_suffix(".tmp")
        tmp.write_text(record.to_json(), encoding="utf-8")
        tmp.replace(self.rollout_file)
        self._metrics = record.metrics()
        if self._routing is not None:
            generation = self.nginx.route(replace(self._routing, metrics=self._metrics))
            self._wait_for_proxy(generation, "the rollout's new figures")

    def _rollout_metrics(self) -> str:
        """The last rollout's gauges: from rollout.json the first time (another command's rollout)."""
        if self._metrics is None:
            record = self.read_rollout()
            self._metrics = record.metrics() if record else ""
        return self._metrics

    def _wait_for_proxy(self, generation: int, change: str) -> None:
        """Return once the public port answers with the new routing, so what is said is true."""
        deadline = time.monotonic() + SWITCH_SECONDS
        seen = "no answer"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    seen = answer.headers.get("x-mlcd-route", "an answer without X-Mlcd-Route")
            except (OSError, urllib.error.URLError) as exc:
                seen = str(exc)
            if seen == str(generation):
                return
            time.sleep(0.05)
        raise DeployError(
            f"nginx on port {self.port} still answers with routing {seen} {SWITCH_SECONDS:.0f} s after "
            f"{change} (routing {generation}; see {self.state_dir / 'error.log'})"
        )

    def write_scrape_targets(self) -> Path:
        """Prometheus file_sd targets: each colour's own /metrics labelled with its colour, and the
        rollout's gauges behind nginx; monitoring/prometheus.yml reads files like this one."""
        labels = {"environment": self.environment}
        targets = [
            {"targets": [f"127.0.0.1:{port}"], "labels": {**labels, "colour": colour}}
            for colour, port in self.ports().items()
        ]
        targets.append(
            {"targets": [f"127.0.0.1:{self.port}"], "labels": {**labels, "__metrics_path__": ROLLOUT_METRICS}}
        )
        path = self.state_dir / SCRAPE_TARGETS
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets, indent=2), encoding="utf-8")
        tmp.replace(path)
        return path

    def stop(self, colour: str) -> None:
        remove_container(self.container(colour))

    def teardown(self) -> None:
        """Stop nginx and both colours and forget the state (`mlcd undeploy`)."""
        self.nginx.stop()
        for colour in COLOURS:
            self.stop(colour)
        self.state_file.unlink(missing_ok=True)
        self.rollout_file.unlink(missing_ok=True)
        self._metrics = None
