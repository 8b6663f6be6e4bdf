"""What each entry point drags in: light modules stay light (checked in a fresh interpreter)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # A deploy only talks HTTP and runs podman/nginx: no numpy, no model runtime.
        ("mlcd.deploy.podman_backend", ("numpy", "onnxruntime", "mlcd.serve", "mlcd.container.smoke")),
        ("mlcd.deploy.bluegreen", ("numpy", "onnxruntime", "pandas")),
        ("mlcd.http_client", ("numpy",)),
    ],
)
def test_module_imports_only_what_it_needs(module, forbidden):
    code = f"import sys, {module}; print([m for m in {forbidden!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"{module} imports {done.stdout.strip()}"
