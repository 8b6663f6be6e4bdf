"""A loopback HTTP server that plays the parts of GitLab's API the report uses, and records requests."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names: HTTP header names are case-insensitive
    body: bytes


@dataclass
class FakeGitLab:
    project: str = "7"
    merge_request: int = 3
    fail_with: int | None = None  # answer every request with this status
    delay: float = 0.0  # seconds before answering, to provoke client timeouts
    # Answer every request with this instead: (status, extra headers, body), e.g. a proxy's HTML page
    raw: tuple[int, dict[str, str], bytes] | None = None
    requests: list[Recorded] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)
    uploads: list[str] = field(default_factory=list)
    opened: list[dict[str, Any]] = field(default_factory=list)  # merge requests opened through the API
    triggered: list[Recorded] = field(default_factory=list)  # pipeline trigger calls (webhooks)

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        time.sleep(self.delay)
        if self.fail_with:
            return self.fail_with, {"message": f"{self.fail_with} simulated"}
        base = f"/api/v4/projects/{self.project}"
        notes = f"{base}/merge_requests/{self.merge_request}/notes"
        if method == "POST" and path == f"{base}/uploads":
            name = re.search(rb'filename="([^"]+)"', body).group(1).decode()
            url = f"/uploads/{len(self.uploads):032x}/{name}"
            self.uploads.append(url)
            return 201, {
                "alt": name,
                "url": url,
                "full_path": f"/group/project{url}",
                "markdown": f"![{name}]({url})",
            }
        if method == "POST" and path == f"{base}/merge_requests":
            self.opened.append(json.loads(body))
            return 201, {"iid": self.merge_request, **self.opened[-1]}
        if method == "POST" and re.fullmatch(rf"{base}/ref/[^/]+/trigger/pipeline", path.split("?")[0]):
            self.triggered.append(Recorded(method, path, {}, body))
            return 201, {"id": 1000 + len(self.triggered), "status": "created"}
        if method == "GET" and path.split("?")[0] == notes:
            return 200, [{"id": i, "body": b, "system": False} for i, b in self.notes.items()]
        if method == "POST" and path == notes:
            note_id = 100 + len(self.notes)
            self.notes[note_id] = json.loads(body)["body"]
            return 201, {"id": note_id, "body": self.notes[note_id]}
        if method == "PUT" and (match := re.fullmatch(rf"{notes}/(\d+)", path)):
            note_id = int(match.group(1))
            self.notes[note_id] = json.loads(body)["body"]
            return 200, {"id": note_id, "body": self.notes[note_id]}
        return 404, {"message": "404 Not found"}


def start(fake: FakeGitLab) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append(
                Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if fake.raw is not None:
                status, headers, data = fake.raw
            else:
                status, payload = fake.handle(self.command, self.path, body)
                headers, data = {"content-type": "application/json"}, json.dumps(payload).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815 - names BaseHTTPRequestHandler calls

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
