"""Serving throughput and latency: mlcd's three protocols, MLflow's scoring server, two bare endpoints.

Run: uv run python benchmarks/serve.py [--seconds 10] [--no-image]
Needs the pipeline outputs (`uv run dvc repro`). All three servers get one
worker process and the same single-record request, on loopback, driven by wrk
(installed with apt-get when missing) at concurrency 1, 16 and 64.
MLflow goes into its own venv (.bench/mlflow-venv, made with uv) and serves the
same trained scikit-learn model with `mlflow models serve --env-manager local`.
Also measures the image size and container start-to-ready time with podman.
Prints a markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from mlcd.container.smoke import free_port

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "bundle"
WORK = ROOT / ".bench"
CONCURRENCY = (1, 16, 64)
BARE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
BODY = b'{"labels":["benign"],"probabilities":[{"benign":0.9,"malignant":0.1}]}'


@app.post("/predict")
async def predict(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


@app.get("/ready")
async def ready() -> Response:
    return Response(b"{}", media_type="application/json")
"""
# The same constant answer without a framework: what uvicorn, uvloop and httptools cost alone.
BARE_ASGI_APP = """
BODY = b'{"labels":["benign"],"probabilities":[{"benign":0.9,"malignant":0.1}]}'


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = BODY if scope["path"] == "/predict" else b"{}"
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [=[%s]=]
"""


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout} s")


@contextmanager
def server(args: list[str], ready_url: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(args, stdout=log, stderr=log, env=env or os.environ, cwd=cwd)
        try:
            wait_ready(ready_url)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return "wrk"


def wrk(url: str, body: str, connections: int, seconds: int) -> dict[str, float]:
    script = WORK / "post.lua"
    script.write_text(WRK_SCRIPT % body)
    threads = min(2, connections)
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "errors": errors,
    }


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def mlflow_model() -> tuple[Path, Path]:
    """A venv with MLflow and an MLflow model directory holding the same trained pipeline."""
    venv = WORK / "mlflow-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["uv", "venv", "-q", str(venv), "-p", sys.executable], check=True)
        subprocess.run(
            [
                "uv",
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                "mlflow",
                f"scikit-learn=={sklearn_version()}",
                "skops",
            ],
            check=True,
        )
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
    return venv, model_dir


def sklearn_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")


def measure(name: str, url: str, body: str, seconds: int) -> dict[int, dict[str, float]]:
    wrk(url, body, 4, 2)  # warm up
    results = {}
    for connections in CONCURRENCY:
        results[connections] = wrk(url, body, connections, seconds)
        print(f"  {name} c={connections}: {results[connections]}", file=sys.stderr)
    return results


def image_figures(runs: int = 3) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "src"))
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--no-image", action="store_true", help="skip the podman image figures")
    options = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    ensure_wrk()
    record = json.loads((BUNDLE / "examples.json").read_text())["records"][0]
    bin_dir = Path(sys.executable).parent
    results = {}

    port = free_port()
    with server(
        [str(bin_dir / "mlcd"), "serve", "--bundle", str(BUNDLE), "--port", str(port)],
        f"http://127.0.0.1:{port}/ready",
    ):
        base = f"http://127.0.0.1:{port}"
        results["mlcd"] = measure("mlcd", f"{base}/predict", json.dumps(record), options.seconds)
        infer = {
            "inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in record.items()]
        }
        results["v2"] = measure("v2", f"{base}/v2/models/model/infer", json.dumps(infer), options.seconds)
        split = {"dataframe_split": {"columns": list(record), "data": [list(record.values())]}}
        results["invocations"] = measure(
            "invocations", f"{base}/invocations", json.dumps(split), options.seconds
        )

    (WORK / "bare_app.py").write_text(BARE_APP)
    (WORK / "bare_asgi_app.py").write_text(BARE_ASGI_APP)
    for name, module in (("bare", "bare_app"), ("bare_asgi", "bare_asgi_app")):
        port = free_port()
        with server(
            [
                str(bin_dir / "uvicorn"),
                f"{module}:app",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            f"http://127.0.0.1:{port}/ready",
            cwd=WORK,
        ):
            results[name] = measure(
                name, f"http://127.0.0.1:{port}/predict", json.dumps(record), options.seconds
            )

    venv, model_dir = mlflow_model()
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": str(WORK),
    }
    with server(
        [
            str(venv / "bin" / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-w",
            "1",
        ],
        f"http://127.0.0.1:{port}/ping",
        env=env,
    ):
        body = json.dumps({"dataframe_records": [record]})
        results["mlflow"] = measure("mlflow", f"http://127.0.0.1:{port}/invocations", body, options.seconds)

    print(f"{options.seconds} s per row, 1 worker per server\n")
    print("| server | c | req/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = (
        ("mlcd", "mlcd /predict"),
        ("v2", "mlcd /v2 infer (JSON tensors)"),
        ("invocations", "mlcd /invocations (dataframe_split)"),
        ("mlflow", "MLflow models serve"),
        ("bare", "bare endpoint (FastAPI)"),
        ("bare_asgi", "bare endpoint (plain ASGI)"),
    )
    for name, label in rows:
        for c, r in results[name].items():
            print(f"| {label} | {c} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} |")
    print("\n| ratio | c=1 | c=16 | c=64 |\n|---|---:|---:|---:|")
    ratios = (
        ("mlcd / MLflow req/s", "mlflow"),
        ("mlcd / bare FastAPI req/s", "bare"),
        ("mlcd / bare ASGI req/s", "bare_asgi"),
    )
    for label, other in ratios:
        cells = " | ".join(f"{results['mlcd'][c]['rps'] / results[other][c]['rps']:.2f}" for c in CONCURRENCY)
        print(f"| {label} | {cells} |")
    if not options.no_image:
        figures = image_figures()
        print(
            f"\nimage: {figures['size_mb']:.0f} MB; container start to /ready: "
            f"median {figures['ready_s']:.2f} s, max {figures['ready_max_s']:.2f} s "
            "(3 starts, podman, local Debian base)"
        )


if __name__ == "__main__":
    main()
