"""A real MLflow tracking server on loopback: full `mlflow` in its own venv, SQLite backend.

The venv lives in .ci/tools/mlflow-venv (git-ignored), made with uv on first use and pinned to
the mlflow-skinny version the client side uses, so client and server speak the same API.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from mlcd.http_client import free_port

from ..helpers import PROJECT_ROOT, start_service
from ..system import machine_lock

VENV = PROJECT_ROOT / ".ci" / "tools" / "mlflow-venv"


def mlflow_venv() -> Path:
    """The server's venv, with the full mlflow of the same version as the client's mlflow-skinny."""
    wanted = version("mlflow-skinny")
    marker = VENV / f".mlflow-{wanted}"
    with machine_lock("mlflow-venv"):  # the other test process may be making it right now
        if not marker.exists():
            subprocess.run(["uv", "venv", "-q", "--clear", str(VENV), "-p", sys.executable], check=True)
            subprocess.run(
                # Compiled: this machine kind never writes bytecode (.ci/setup), and the server
                # would compile all of mlflow at every start, past a minute with the other core busy.
                [
                    "uv",
                    "pip",
                    "install",
                    "-q",
                    "--compile-bytecode",
                    "--python",
                    str(VENV / "bin" / "python"),
                    f"mlflow=={wanted}",
                ],
                check=True,
            )
            marker.touch()
    return VENV


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen[bytes]
    store: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_mlflow(base: Path) -> MlflowServer:
    venv = mlflow_venv()
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{base / 'mlflow.db'}",
        "--artifacts-destination",
        str(base / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # A cold start (database migrations, the FastAPI app) takes seconds, and far more while the other
    # test process keeps the second core busy.
    # MLflow 3's job runner (two huey consumers and their workers) serves GenAI scorers no test uses;
    # off, the server starts with one process fewer per consumer and leaves the cores to the tests.
    no_jobs = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = start_service(
        command, f"{url}/health", base / "server.log", any_answer=False, timeout=180, env=no_jobs
    )
    return MlflowServer(url, process, base)
