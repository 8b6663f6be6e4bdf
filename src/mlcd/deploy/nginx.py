"""The reverse proxy in front of the podman colours: Debian's nginx, one instance per environment.

A switch rewrites the upstream and sends `nginx -s reload`: new workers take new
connections while old ones finish the requests they hold, so none is dropped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlcd.errors import DeployError
from mlcd.system import require_programs

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
    # One request per client connection. A reload closes idle keep-alive connections, and a client
    # that has just sent a POST on one gets no answer (HTTP/1.1 lets clients retry only idempotent
    # requests); measured: 1 failure in ~1,000 requests per switch. Upstream connections stay pooled.
    keepalive_timeout 0;
    upstream mlcd_live {{
        server 127.0.0.1:{upstream_port};
        keepalive 32;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://mlcd_live;
            # Stream bodies both ways: no temp files, which nginx's unprivileged workers could not write here.
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            add_header X-Mlcd-Colour {colour} always;
        }}
    }}
}}
"""


def nginx_program() -> str:
    (path,) = require_programs({"nginx": "nginx-light"}, "the podman backend's proxy").values()
    return path


class Nginx:
    def __init__(self, directory: Path, host: str, port: int) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.config = directory / "nginx.conf"

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

    def route(self, upstream_port: int, colour: str) -> None:
        """Point the public port at `upstream_port`: start nginx, or reload it gracefully."""
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.directory / "tmp" / name).mkdir(parents=True, exist_ok=True)
        candidate = self.directory / "nginx.conf.new"
        text = CONFIG.format(
            dir=self.directory, host=self.host, port=self.port, upstream_port=upstream_port, colour=colour
        )
        candidate.write_text(text, encoding="utf-8")
        previous = self.config.read_text(encoding="utf-8") if self.config.exists() else None
        candidate.replace(self.config)
        try:
            self._run("-t", "-q")
        except DeployError:
            if previous is not None:
                self.config.write_text(previous, encoding="utf-8")
            raise
        if self.running():
            self._run("-s", "reload")
        else:
            self._run()

    def stop(self) -> None:
        if self.running():
            self._run("-s", "quit")
