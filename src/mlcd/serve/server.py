"""Start the API: verify and load the bundle, check it answers its own examples, then serve."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi import FastAPI

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.model import BundleModel
from mlcd.serve.selfcheck import self_check

_ENV = {
    "bundle": "MLCD_BUNDLE",
    "threads": "MLCD_THREADS",
    "max_batch": "MLCD_MAX_BATCH",
    "max_body_bytes": "MLCD_MAX_BODY_BYTES",
}


def load(settings: ServeSettings) -> BundleModel:
    model = BundleModel(settings.bundle, threads=settings.threads)
    self_check(model)
    return model


def settings_from_env() -> ServeSettings:
    return ServeSettings(
        bundle=Path(os.environ[_ENV["bundle"]]),
        threads=int(os.environ[_ENV["threads"]]),
        max_batch=int(os.environ[_ENV["max_batch"]]),
        max_body_bytes=int(os.environ[_ENV["max_body_bytes"]]),
    )


def app_factory() -> FastAPI:
    """uvicorn's factory hook: each worker process loads the bundle itself."""
    settings = settings_from_env()
    return create_app(load(settings), settings)


def serve(settings: ServeSettings, host: str, port: int, workers: int) -> None:
    model = load(settings)  # fail here, with a clear message, before any port is opened
    if workers == 1:
        _run(create_app(model, settings), host, port, workers=1)
        return
    for key, env in _ENV.items():
        os.environ[env] = str(getattr(settings, key))
    with tempfile.TemporaryDirectory(prefix="mlcd-prometheus-") as shared:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", shared)
        _run("mlcd.serve.server:app_factory", host, port, workers=workers)


def _run(app: FastAPI | str, host: str, port: int, workers: int) -> None:
    """uvicorn with the fast loop and parser, quiet logs; `app` as an import string for several workers."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
