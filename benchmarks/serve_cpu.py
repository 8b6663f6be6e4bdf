"""The server's own CPU per request, in one process, without sockets: mlcd against the floor.

Run: uv run python benchmarks/serve_cpu.py [--requests 4000] [--rounds 15]
Needs the pipeline outputs (`uv run dvc repro`). benchmarks/serve.py measures over loopback with
wrk, which on a shared 2-core machine moves one server's speed by up to 30 % between runs; this
one feeds the same single-record requests straight into each server's HTTP protocol object
(uvicorn's httptools protocol for the floor, mlcd's guarded one for mlcd), CONNECTIONS of them
at a time on as many keep-alive connections, then runs the event loop until every ASGI task is
done, and counts the process's CPU time (every thread: the prediction log's writer and the drift
publisher included) per request. What it leaves out, the socket reads and writes and the loop's
polling, costs both servers alike. Rounds alternate the servers; pinned to one core. Prints
markdown tables; asserts nothing.

Compared: the floor (benchmarks/_peers.FLOOR_APP: parse, float32 matrix, the same ONNX session);
mlcd as the image serves (drift off); mlcd with the prediction log and drift on (issue 25's cost).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from _peers import FLOOR_APP
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.protocol import ConnectionLimits, GuardedHttpToolsProtocol
from mlcd.serve.rotating_log import LogSettings
from mlcd.serve.server import load

ROOT = Path(__file__).resolve().parents[1]
# Requests in flight at once, as wrk's c=16 in benchmarks/serve.py: a busy event loop's turn finds
# that many ready, and ASGI's tasks for all of them run in the loop's next turns together. One at a
# time would charge the floor's ASGI a loop turn per request that a loaded server shares.
CONNECTIONS = 16
BUNDLE = ROOT / "models" / "bundle"


class Transport(asyncio.Transport):
    """Takes the replies and forgets them."""

    def __init__(self) -> None:
        super().__init__()
        self.replies = 0

    def write(self, data: Any) -> None:
        self.replies += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default


Connection = Callable[[], asyncio.Protocol]


def connection(app: Any, guarded: bool) -> tuple[asyncio.Protocol, ServerState]:
    config = Config(app=app, proxy_headers=False, log_level="warning")
    state = ServerState()
    if guarded:
        protocol: asyncio.Protocol = GuardedHttpToolsProtocol(
            config=config, server_state=state, app_state={}, limits=ConnectionLimits()
        )
    else:
        protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
    protocol.connection_made(Transport())
    return protocol, state


async def cpu_per_request(
    app: Any, guarded: bool, request: bytes, count: int, settle: float, connections: int = CONNECTIONS
) -> float:
    """µs of process CPU per request over `count` requests, `connections` at a time (each on its own
    connection, as one turn of a busy event loop finds them), then the loop run until every ASGI
    task is done; `settle` seconds after, so background threads finish the work the requests gave."""
    opened = [connection(app, guarded) for _ in range(connections)]
    began = time.process_time()
    for _ in range(count // connections):
        for protocol, _state in opened:
            protocol.data_received(request)
        while any(state.tasks for _protocol, state in opened):  # an ASGI answer runs as a task
            await asyncio.sleep(0)
    await asyncio.sleep(settle)
    spent = time.process_time() - began
    for protocol, _state in opened:
        protocol.connection_lost(None)
    return spent / (count // connections * connections) * 1e6


def floor_app() -> Any:
    os.environ["FLOOR_BUNDLE"] = str(BUNDLE)
    module = types.ModuleType("floor_app")
    exec(compile(FLOOR_APP, "floor_app.py", "exec"), module.__dict__)
    return module.app


def requests(record: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    tensors = {
        "inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in record.items()]
    }

    def post(path: str, payload: Any) -> tuple[str, bytes]:
        body = json.dumps(payload).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        return path, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return {"/predict": post("/predict", record), "/v2 infer": post("/v2/models/model/infer", tensors)}


async def main(count: int, rounds: int) -> None:
    record = pd.read_parquet(ROOT / "data" / "processed" / "test.parquet").drop(columns="diagnosis").iloc[0]
    plain = ServeSettings(bundle=BUNDLE, drift=False)
    logs = Path(tempfile.mkdtemp(prefix="mlcd-bench-log-"))
    looped = ServeSettings(bundle=BUNDLE, drift=True, log=LogSettings(logs))
    apps = {
        "floor": (floor_app(), False),
        "mlcd": (create_app(load(plain), plain), True),
        "mlcd, log + drift": (create_app(load(looped), looped), True),
    }
    gc.collect()
    gc.freeze()  # as `mlcd serve` does once its app is built (serve/server.py): the same heap for all
    cases = [(server, kind) for server in apps for kind in requests(record.to_dict())]
    cases.remove(("mlcd, log + drift", "/v2 infer"))
    bodies = requests(record.to_dict())
    results: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for case in cases:  # warm-up
        await cpu_per_request(*apps[case[0]], bodies[case[1]][1], count // 10, 0.0)
    for round_ in range(rounds):
        shift = round_ % len(cases)
        for server, kind in cases[shift:] + cases[:shift]:
            app, guarded = apps[server]
            settle = 0.6 if "log" in server else 0.0  # the log's writer flushes every 0.5 s
            results[server, kind].append(await cpu_per_request(app, guarded, bodies[kind][1], count, settle))
    apps["mlcd, log + drift"][0].close()

    print(f"{rounds} rounds of {count:,} requests, one record each, in order; process CPU per request\n")
    print("| server | request | µs per request (median) | best | range |")
    print("|---|---|---:|---:|---|")
    for (server, kind), values in results.items():
        median, best, worst = statistics.median(values), min(values), max(values)
        print(f"| {server} | {kind} | {median:.1f} | {best:.1f} | {best:.1f}-{worst:.1f} |")
    print(
        "\nratio of CPU per request (the floor's or the plain server's / the other's): the median of the"
        "\nrounds' ratios with their range, and the ratio of each one's best round (on a shared machine"
        "\nthe least disturbed)\n"
    )
    print("| ratio | median | range | best / best |")
    print("|---|---:|---|---:|")
    for label, top, bottom in [
        ("mlcd /predict / floor /predict", ("floor", "/predict"), ("mlcd", "/predict")),
        ("mlcd /v2 / floor /v2", ("floor", "/v2 infer"), ("mlcd", "/v2 infer")),
        ("log + drift / plain, /predict", ("mlcd", "/predict"), ("mlcd, log + drift", "/predict")),
    ]:
        ratios = [a / b for a, b in zip(results[top], results[bottom], strict=True)]
        best = min(results[top]) / min(results[bottom])
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(f"| {label} | {statistics.median(ratios):.2f} | {spread} | {best:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    os.sched_setaffinity(0, {0})
    import uvloop

    uvloop.run(main(options.requests, options.rounds))
