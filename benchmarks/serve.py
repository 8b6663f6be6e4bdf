"""Serving throughput and latency: mlcd's three protocols against a model-running floor and three peers.

Run: uv run python benchmarks/serve.py [--seconds 5] [--rounds 3] [--image] [--quick] [--loop]
Needs the pipeline outputs (`uv run dvc repro`) and two cores. Every server gets one
process (LitServe: its API process and one inference worker) pinned to core 0 with
taskset; wrk (one thread) runs on core 1, on loopback, at concurrency 1, 16 and 64,
with the same single record each protocol's way. All serve the bundle's own model.onnx
(MLflow: the same trained scikit-learn pipeline). The servers start once and stay up;
each round measures every target in a rotated order, so drift in the machine's speed
(another job sharing it) spreads over all of them. Ratios are taken within a round and
reported as the median over rounds with their range. Peers (benchmarks/_peers.py) live
in venvs of their own under .bench. Prints markdown tables; asserts nothing.

--loop adds a second mlcd server with the closed loop on (`--log-dir`: every answer logged;
drift over the last 1,000 records every 10 s, as params.yaml's monitor section says) and
reports its throughput against the plain one, and both servers' resident memory after the load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from _peers import FLOOR_APP, LITSERVE_APP, mlserver_repository, venv

from mlcd.bundle import open_bundle
from mlcd.container.smoke import free_port

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "bundle"
WORK = ROOT / ".bench"
CONCURRENCY = (1, 16, 64)
SERVER_CORE, LOAD_CORE = "0", "1"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [=[%s]=]
"""


@dataclass(frozen=True)
class Target:
    label: str
    url: str
    body: str
    pid: int | None = None  # the server's process: its CPU time per request is reported too


def family(pid: int) -> list[int]:
    """A server's process and its children (taskset execs the server, so `pid` is the server's)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *map(int, children)]


def cpu_seconds(pid: int) -> float:
    """CPU time the process and its children have used (user + system, every thread)."""
    ticks = 0
    for each in family(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout} s (exit code {process.poll()})")


@contextmanager
def pinned_server(
    args: list[str], ready_url: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`args` on the server core until the block ends; its children inherit the pin."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *args], stdout=log, stderr=log, env=env or os.environ, cwd=cwd
        )
        try:
            wait_ready(ready_url, process)
            yield process
        except SystemExit:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def ensure_tools() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)


def wrk(target: Target, connections: int, seconds: int) -> dict[str, float]:
    script = WORK / "post.lua"
    script.write_text(WRK_SCRIPT % target.body)
    cpu_before = cpu_seconds(target.pid) if target.pid else 0.0
    done = subprocess.run(
        [
            *("taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"),
            *("-s", str(script), target.url),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    # The server's CPU time per request: unlike req/s, it does not move when another job takes the
    # machine's time, so it compares servers on a shared machine (0 when the pid is not known).
    requests = int(_found(r"(\d+) requests in", out))
    cpu_us = (cpu_seconds(target.pid) - cpu_before) / requests * 1e6 if target.pid and requests else 0.0
    return {
        "cpu_us": cpu_us,
        "rps": float(_found(r"Requests/sec:\s+([\d.]+)", out)),
        "p50": to_ms(_found(r"^\s+50%\s+(\S+)", out)),
        "p99": to_ms(_found(r"^\s+99%\s+(\S+)", out)),
        "errors": errors,
    }


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise SystemExit(f"wrk's output has no {pattern!r}:\n{text}")
    return match.group(1)


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert match, text
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def mlflow_model() -> tuple[Path, Path]:
    """A venv with MLflow and an MLflow model directory holding the same trained pipeline."""
    from importlib.metadata import version

    python = venv(WORK, "mlflow", ["mlflow", f"scikit-learn=={version('scikit-learn')}", "skops"])
    model_dir = WORK / "mlflow-model"
    shutil.rmtree(model_dir, ignore_errors=True)
    # Loaded with the same trusted-type check as mlcd, then saved in MLflow's format.
    code = (
        "import sys, skops.io as sio, mlflow.sklearn; "
        "p = sys.argv[1]; m = sio.load(p, trusted=sio.get_untrusted_types(file=p)); "
        "mlflow.sklearn.save_model(m, sys.argv[2], skops_trusted_types=sio.get_untrusted_types(file=p))"
    )
    subprocess.run(
        [str(python), "-c", code, str(ROOT / "models" / "model.skops"), str(model_dir)], check=True
    )
    return python.parent, model_dir


MEMORY: dict[str, subprocess.Popen[bytes]] = {}  # label -> server process, for --loop's memory figures


def start_servers(
    stack: ExitStack, record: dict[str, float], peers: bool = True, loop: bool = False
) -> list[Target]:
    """Every server up, pinned; the targets to load, one per (server, protocol)."""
    bundle = open_bundle(BUNDLE)
    names = [f.name for f in bundle.schema.features]
    classes = list(bundle.classes or ())
    bin_dir = Path(sys.executable).parent
    one = json.dumps(record)
    tensors = json.dumps(
        {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in record.items()]}
    )
    split = json.dumps({"dataframe_split": {"columns": list(record), "data": [list(record.values())]}})
    targets = []

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mlcd = [str(bin_dir / "mlcd"), "serve", "--bundle", str(BUNDLE)]
    # Drift off, as in the image (which has no scipy); --loop's server turns it and the log on.
    plain = [*mlcd, "--no-drift", "--port", str(port)]
    MEMORY["mlcd"] = stack.enter_context(pinned_server(plain, f"{base}/ready"))
    plain_pid = MEMORY["mlcd"].pid
    if loop:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlcd-bench-log-")))
        loop_port = free_port()
        loop_base = f"http://127.0.0.1:{loop_port}"
        MEMORY["mlcd, log + drift"] = stack.enter_context(
            pinned_server(
                [*mlcd, "--port", str(loop_port), "--log-dir", str(logs), "--drift"], f"{loop_base}/ready"
            )
        )
        loop_pid = MEMORY["mlcd, log + drift"].pid
        targets.append(Target("mlcd /predict, log + drift", f"{loop_base}/predict", one, loop_pid))
    targets += [
        Target("mlcd /predict", f"{base}/predict", one, plain_pid),
        Target("mlcd /v2 infer", f"{base}/v2/models/model/infer", tensors, plain_pid),
        Target("mlcd /invocations", f"{base}/invocations", split, plain_pid),
    ]

    (WORK / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    uvicorn = [str(bin_dir / "uvicorn"), "floor_app:app", "--port", str(port), "--loop", "uvloop"]
    uvicorn += ["--http", "httptools", "--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "FLOOR_BUNDLE": str(BUNDLE)}
    floor_pid = stack.enter_context(pinned_server(uvicorn, f"{base}/ready", env=env, cwd=WORK)).pid
    targets += [
        Target("floor /predict", f"{base}/predict", one, floor_pid),
        Target("floor /v2 infer", f"{base}/v2/models/model/infer", tensors, floor_pid),
    ]
    if not peers:
        return targets

    python = venv(WORK, "mlserver", ["mlserver==1.7.*", "onnxruntime", "numpy"])
    ports = (free_port(), free_port(), free_port())
    folder = mlserver_repository(WORK, bundle.model_file, names, classes, ports)
    base = f"http://127.0.0.1:{ports[0]}"
    mlserver = [str(python.parent / "mlserver"), "start", str(folder)]
    stack.enter_context(pinned_server(mlserver, f"{base}/v2/health/ready", cwd=folder))
    targets.append(Target("MLServer 1.7 /v2 infer (ONNX)", f"{base}/v2/models/model/infer", tensors))

    python = venv(WORK, "litserve", ["litserve", "onnxruntime", "numpy"])
    (WORK / "litserve_app.py").write_text(LITSERVE_APP)
    port = free_port()
    spec = json.dumps({"features": names, "classes": classes, "model": str(bundle.model_file)})
    base = f"http://127.0.0.1:{port}"
    stack.enter_context(
        pinned_server([str(python), "litserve_app.py", str(port), spec], f"{base}/health", cwd=WORK)
    )
    targets.append(Target("LitServe /predict (ONNX)", f"{base}/predict", one))

    bin_mlflow, model_dir = mlflow_model()
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{bin_mlflow}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": str(WORK),
    }
    mlflow = [str(bin_mlflow / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local"]
    mlflow += ["-p", str(port), "-h", "127.0.0.1", "-w", "1"]
    stack.enter_context(pinned_server(mlflow, f"http://127.0.0.1:{port}/ping", env=env))
    targets.append(
        Target("MLflow 3 /invocations (scikit-learn)", f"http://127.0.0.1:{port}/invocations", split)
    )
    return targets


Results = dict[str, dict[int, list[dict[str, float]]]]  # target -> c -> one measurement per round


def measure(targets: list[Target], rounds: int, seconds: int) -> Results:
    results: Results = {t.label: {c: [] for c in CONCURRENCY} for t in targets}
    for target in targets:
        wrk(target, 4, 2)  # warm up
    for round_ in range(rounds):
        shift = round_ % len(targets)
        order = targets[shift:] + targets[:shift]
        for target in order if round_ % 2 == 0 else order[::-1]:
            for connections in CONCURRENCY:
                figures = wrk(target, connections, seconds)
                results[target.label][connections].append(figures)
                print(f"  round {round_ + 1} {target.label} c={connections}: {figures}", file=sys.stderr)
    return results


RATIOS = (
    ("mlcd /predict log + drift / mlcd /predict", "mlcd /predict, log + drift", "mlcd /predict"),
    ("mlcd /predict / floor /predict", "mlcd /predict", "floor /predict"),
    ("mlcd /v2 / floor /v2", "mlcd /v2 infer", "floor /v2 infer"),
    ("mlcd /v2 / MLServer /v2", "mlcd /v2 infer", "MLServer 1.7 /v2 infer (ONNX)"),
    ("mlcd /predict / LitServe /predict", "mlcd /predict", "LitServe /predict (ONNX)"),
    ("mlcd /invocations / MLflow /invocations", "mlcd /invocations", "MLflow 3 /invocations (scikit-learn)"),
)


def report(results: Results, seconds: int, rounds: int) -> None:
    print(f"{rounds} rounds of {seconds} s per cell; server on core {SERVER_CORE}, wrk on core {LOAD_CORE}\n")
    print("| server | c | req/s (median) | CPU µs per request | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, by_c in results.items():
        for c, runs in by_c.items():
            rps, cpu, p50, p99 = (
                statistics.median(r[key] for r in runs) for key in ("rps", "cpu_us", "p50", "p99")
            )
            errors = sum(r["errors"] for r in runs)
            print(f"| {label} | {c} | {rps:.0f} | {cpu:.0f} | {p50:.2f} | {p99:.2f} | {errors:.0f} |")
    print("\nreq/s ratio, median of the rounds' ratios [range]\n")
    _ratio_table(results, lambda top, bottom: top["rps"] / bottom["rps"])
    print("\nthe same by the server's CPU time per request (bottom's / top's: as req/s would be with the")
    print("server's core saturated and to itself), median of the rounds' ratios [range]\n")
    _ratio_table(results, lambda top, bottom: bottom["cpu_us"] / top["cpu_us"], needs="cpu_us")


def _ratio_table(
    results: Results, ratio: Callable[[dict[str, float], dict[str, float]], float], needs: str = "rps"
) -> None:
    """One row per RATIOS pair measured (both with a nonzero `needs`): per c, the median over rounds
    of `ratio(top's figures, bottom's)`, with its range."""
    print("| ratio | " + " | ".join(f"c={c}" for c in CONCURRENCY) + " |")
    print("|---|" + "---:|" * len(CONCURRENCY))
    for name, top, bottom in RATIOS:
        if not all(label in results and results[label][CONCURRENCY[0]][0][needs] for label in (top, bottom)):
            continue
        cells = []
        for c in CONCURRENCY:
            each = [ratio(a, b) for a, b in zip(results[top][c], results[bottom][c], strict=True)]
            cells.append(f"{statistics.median(each):.2f} [{min(each):.2f}-{max(each):.2f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")


def resident_mb(pid: int) -> float:
    """The server's resident set, children included."""
    total = 0
    for each in family(pid):
        status = Path(f"/proc/{each}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return total / 1024


def image_figures(runs: int = 3) -> dict[str, float]:
    from mlcd.container.image import build
    from mlcd.container.smoke import running

    image = build(ROOT, "localhost/mlcd-model:bench", local_base=True, base=None, runtime=None)
    ready = []
    for _ in range(runs):
        with running(image.name, "mlcd-bench") as container:
            ready.append(container.ready_seconds)
    return {
        "size_mb": image.size_bytes / 1e6,
        "ready_s": sorted(ready)[len(ready) // 2],
        "ready_max_s": max(ready),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5, help="wrk's duration per cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", action="store_true", help="also the podman image's size and start time")
    parser.add_argument("--quick", action="store_true", help="mlcd and the floor only (no peers)")
    parser.add_argument("--loop", action="store_true", help="also mlcd with the prediction log and drift on")
    options = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores: one for the servers, one for wrk")
    WORK.mkdir(exist_ok=True)
    ensure_tools()
    record = json.loads((BUNDLE / "examples.json").read_text())["records"][0]
    with ExitStack() as stack:
        targets = start_servers(stack, record, peers=not options.quick, loop=options.loop)
        results = measure(targets, options.rounds, options.seconds)
        memory = (
            {label: resident_mb(process.pid) for label, process in MEMORY.items()} if options.loop else {}
        )
    report(results, options.seconds, options.rounds)
    for label, megabytes in memory.items():
        print(f"\nresident memory after the load, {label}: {megabytes:.0f} MB")
    if options.image:
        figures = image_figures()
        print(
            f"\nimage: {figures['size_mb']:.0f} MB; container start to /ready: "
            f"median {figures['ready_s']:.2f} s, max {figures['ready_max_s']:.2f} s "
            "(3 starts, podman, local Debian base)"
        )


if __name__ == "__main__":
    main()
