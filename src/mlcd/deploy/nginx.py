"""The reverse proxy in front of the podman colours: Debian's nginx, one instance per environment.

A switch rewrites the upstream and sends `nginx -s reload`: new workers take new
connections while old ones finish the requests they hold, so none is dropped.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlcd.errors import DeployError
from mlcd.system import require_programs

ROLLOUT_METRICS = "/-/rollout/metrics"  # on the public port: the rollout's gauges
CONFIG = """\
# Written by mlcd deploy; edits are overwritten at the next switch.
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    client_max_body_size 8m;
    # A mirrored body is read whole before it is sent on: keep it in memory, as temp files would be
    # written by nginx's unprivileged workers into a directory they cannot write.
    client_body_buffer_size {body_buffer};
    # One request per client connection. A reload closes idle keep-alive connections, and a client
    # that has just sent a POST on one gets no answer (HTTP/1.1 lets clients retry only idempotent
    # requests); measured: 1 failure in ~1,000 requests per switch. Upstream connections stay pooled.
    keepalive_timeout 0;
{upstreams}
    # The client's request id if it sent one, else nginx's: the same id reaches a mirror, so the
    # candidate's answer can be matched with the stable one's.
    map $http_x_request_id $mlcd_request_id {{
        "" $request_id;
        default $http_x_request_id;
    }}
{split}
    server {{
        listen {host}:{port};
        location / {{
{mirror}            proxy_pass http://$mlcd_colour;
            # Stream bodies both ways: no temp files, which nginx's unprivileged workers could not write here.
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-Id $mlcd_request_id;
            add_header X-Mlcd-Colour $mlcd_colour always;
            add_header X-Mlcd-Route {generation} always;
        }}
{mirror_location}        # The rollout's state for Prometheus (text format), rewritten at each check: inline,
        # as nginx's unprivileged workers may not read files in the state directory.
        location = {rollout_metrics} {{
            default_type "text/plain; version=0.0.4";
            return 200 '{metrics}';
        }}
    }}
}}
"""

# Pooled connections are closed by nginx before the server's own idle timeout (serve's 5 s keep-alive)
# closes them: otherwise nginx may send a request on a connection the server is closing, and a POST
# is not retried (a 502; seen once in ~6,000 requests to a candidate that answers slowly).
UPSTREAM = """\
    upstream {colour} {{
        server 127.0.0.1:{port};
        keepalive 32;
        keepalive_timeout 4s;
    }}"""

# split_clients hashes nginx's own per-request id, not the client's address: all loopback traffic
# comes from one address and would go one way.
SPLIT = """\
    split_clients "${{request_id}}" $mlcd_colour {{
        {weight}% {candidate};
        * {live};
    }}"""

PLAIN = """\
    map $request_id $mlcd_colour {{
        default {live};
    }}"""

MIRROR = """\
            mirror /-/mirror;
            mirror_request_body on;
"""

# The mirror's answer is thrown away; its short timeouts bound what a slow shadow holds.
MIRROR_LOCATION = """\
        location = /-/mirror {{
            internal;
            proxy_pass http://127.0.0.1:{port}$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Request-Id $mlcd_request_id;
            proxy_connect_timeout {timeout_ms}ms;
            proxy_send_timeout {timeout_ms}ms;
            proxy_read_timeout {timeout_ms}ms;
        }}
"""


@dataclass(frozen=True)
class Routing:
    """Where the public port sends requests: the live colour, a share to a candidate, a mirror."""

    live: str
    ports: dict[str, int]  # each running colour's loopback port
    candidate: str | None = None
    weight: float = 0.0  # the candidate's share of requests, in percent
    mirror_port: int | None = None  # a shadow's judge: every request is copied to it
    mirror_timeout: float = 1.0
    metrics: str = ""  # the rollout's gauges, in Prometheus' text format

    def render(self, directory: Path, host: str, port: int, generation: int) -> str:
        if self.candidate is not None and 0 < self.weight < 100:
            split = SPLIT.format(weight=f"{self.weight:g}", candidate=self.candidate, live=self.live)
        else:
            split = PLAIN.format(live=self.candidate if self.weight >= 100 and self.candidate else self.live)
        mirrored = self.mirror_port is not None
        return CONFIG.format(
            dir=directory, host=host, port=port, generation=generation,
            body_buffer="8m" if mirrored else "16k",
            upstreams="\n".join(UPSTREAM.format(colour=c, port=p) for c, p in sorted(self.ports.items())),
            split=split,
            rollout_metrics=ROLLOUT_METRICS,
            metrics=self.metrics.replace("\\", "").replace("'", "").replace("$", ""),
            mirror=MIRROR if mirrored else "",
            mirror_location=MIRROR_LOCATION.format(
                port=self.mirror_port, timeout_ms=max(1, round(self.mirror_timeout * 1000))
            ) if mirrored else "",
        )  # fmt: skip


def nginx_program() -> str:
    (path,) = require_programs({"nginx": "nginx-light"}, "the podman backend's proxy").values()
    return path


class Nginx:
    def __init__(self, directory: Path, host: str, port: int) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.config = directory / "nginx.conf"
        self._retiring: set[int] = set()  # workers of earlier routings, told to finish and exit

    def _run(self, *args: str) -> None:
        command = [nginx_program(), "-p", str(self.directory), "-c", str(self.config), "-e", "stderr", *args]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise DeployError(f"nginx {' '.join(args) or 'start'} failed: {done.stderr.strip()[-1500:]}")

    def running(self) -> bool:
        pid_file = self.directory / "nginx.pid"
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
        return True

    def generation(self) -> int:
        """How many times the routing was written: each answer names it (X-Mlcd-Route)."""
        marker = self.directory / "nginx.generation"
        return int(marker.read_text()) if marker.is_file() else 0

    def route(self, routing: Routing) -> int:
        """Route the public port: start nginx, or reload it gracefully. Returns the new generation."""
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "tmp" / name).mkdir(parents=True, exist_ok=True)
        generation = self.generation() + 1
        candidate = self.directory / "nginx.conf.new"
        candidate.write_text(
            routing.render(self.directory, self.host, self.port, generation), encoding="utf-8"
        )
        previous = self.config.read_text(encoding="utf-8") if self.config.exists() else None
        candidate.replace(self.config)
        try:
            self._run("-t", "-q")
        except DeployError:
            if previous is not None:
                self.config.write_text(previous, encoding="utf-8")
            raise
        (self.directory / "nginx.generation").write_text(str(generation), encoding="utf-8")
        if self.running():
            self._retiring |= self._workers()
            self._run("-s", "reload")
        else:
            self._run()
        return generation

    def _workers(self) -> set[int]:
        """The master's children now (Linux /proc); empty when nginx is not running."""
        try:
            master = int((self.directory / "nginx.pid").read_text().strip())
            return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}
        except (OSError, ValueError):
            return set()

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the workers of the routing before the last have finished their requests and
        exited (at most `timeout` s). Until then one may still take a new connection with the old
        routing (before it has read its QUIT), or be answering a colour that is about to stop."""
        deadline = time.monotonic() + timeout
        while self._retiring and time.monotonic() < deadline:
            self._retiring = {pid for pid in self._retiring if Path(f"/proc/{pid}").exists()}
            if self._retiring:
                time.sleep(0.02)
        return not self._retiring

    def stop(self) -> None:
        if self.running():
            self._run("-s", "quit")
