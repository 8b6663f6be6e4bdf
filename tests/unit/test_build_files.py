"""The Dockerfile passes hadolint, and the image's pinned requirements match uv.lock."""

import shutil
import subprocess
import sys
from pathlib import Path

from ..helpers import PROJECT_ROOT

BIN = Path(sys.executable).parent


def test_hadolint_reports_nothing():
    done = subprocess.run([BIN / "hadolint", "Dockerfile"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_serve_requirements_match_uv_lock():
    uv = shutil.which("uv")
    assert uv, "uv is needed to export requirements"
    done = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--extra", "serve", "--no-emit-project", "--no-header", "-q"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    committed = (PROJECT_ROOT / "deploy" / "requirements-serve.txt").read_text()
    assert done.stdout == committed, (
        "deploy/requirements-serve.txt is stale: run `uv export --frozen --no-dev --extra serve "
        "--no-emit-project --no-header -o deploy/requirements-serve.txt`"
    )
    for heavy in ("scikit-learn", "pandas", "scipy", "dvc"):
        assert f"\n{heavy}==" not in committed
