"""Start the API: verify and load the bundle, check it answers its own examples, bind, then serve.

Everything that can fail (the bundle, its model, the port) fails before anything is
announced, as one MlcdError; uvicorn gets a socket that is already listening.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import gc
import os
import socket
import tempfile
from collections.abc import Callable

from mlcd.errors import ServeError
from mlcd.serve.app import Api, ServeSettings, create_app
from mlcd.serve.model import BundleModel
from mlcd.serve.protocol import ConnectionLimits, GuardedHttpToolsProtocol
from mlcd.serve.rotating_log import check_directory
from mlcd.serve.selfcheck import self_check

DEFAULT_LIMITS = ConnectionLimits()


def load(settings: ServeSettings) -> BundleModel:
    model = BundleModel(settings.bundle, threads=settings.threads)
    self_check(model)
    return model


def app_factory(settings: ServeSettings) -> Api:
    """What each worker process runs: it loads and checks the bundle itself (uvicorn pickles the
    factory, settings included, into every spawned worker)."""
    return create_app(load(settings), settings)


# Descriptors a process needs beside its connections: the bundle, logs, metrics files, threads.
_SPARE_DESCRIPTORS = 100


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer if the descriptor limit would run out first: past the cap a new connection
    gets a clean 503, where past the limit it would get an empty reply and /health with it."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - _SPARE_DESCRIPTORS))


def serve(
    settings: ServeSettings,
    host: str,
    port: int,
    workers: int,
    limits: ConnectionLimits = DEFAULT_LIMITS,
    announce: Callable[[], None] = lambda: None,
) -> None:
    model = load(settings)  # a bad bundle fails here, before any port is opened
    if settings.log is not None:
        check_directory(settings.log.directory)
    listening = bind(host, port)
    announce()
    limits = dataclasses.replace(limits, max_connections=connection_cap(limits.max_connections))
    if workers == 1:
        _run(create_app(model, settings), listening, workers=1, limits=limits)
        return
    with tempfile.TemporaryDirectory(prefix="mlcd-prometheus-") as shared:
        # prometheus_client's own interface for metrics shared by several processes.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", shared)
        _run(functools.partial(app_factory, settings), listening, workers=workers, limits=limits)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a ServeError saying why not (a busy port is the usual one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}: {exc.strerror}; pass an address with --host") from None
    family, kind, proto, _, address = infos[0]
    listening = socket.socket(family, kind, proto)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(address)
        listening.listen(2048)
    except OSError as exc:
        listening.close()
        why = {
            errno.EADDRINUSE: "is in use by another process: stop it, or choose another with --port",
            errno.EACCES: "needs privileges (ports below 1024): choose one above 1023 with --port",
            errno.EADDRNOTAVAIL: "is not an address of this machine: pass one with --host",
        }.get(exc.errno or 0, f"cannot be opened: {exc.strerror}")
        raise ServeError(f"{host}:{port} {why}") from None
    listening.set_inheritable(True)
    return listening


def _frozen(app: Api) -> Api:
    """`app`, with every object made before it serves moved out of the garbage collector's view.

    With the prediction log on, the answers it queues (and the 100,000 kept for /feedback) live
    long enough to be promoted, so full collections come every second or two, and each walked the
    whole start-up heap (modules, the ONNX session's wrappers): 7 % of the server's time under load,
    measured with gc.callbacks; frozen, about half of that."""
    gc.freeze()
    return app


def _built_and_frozen(factory: Callable[[], Api]) -> Api:
    return _frozen(factory())


def _run(
    app: Api | Callable[[], Api], listening: socket.socket, workers: int, limits: ConnectionLimits
) -> None:
    """uvicorn with the fast loop and the guarded parser, quiet logs; `app` as a factory for
    several workers."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        _frozen(app) if isinstance(app, Api) else functools.partial(_built_and_frozen, app),
        workers=workers,
        factory=not isinstance(app, Api),
        loop="uvloop",
        # uvicorn only calls it like a class (protocol_class(config=..., ...)); typed as type[Protocol].
        http=functools.partial(GuardedHttpToolsProtocol, limits=limits),  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
        # The API reads no client address, so X-Forwarded-For need not be parsed on every request.
        proxy_headers=False,
        timeout_keep_alive=max(1, round(limits.keepalive_seconds)),
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )
    if workers == 1:
        uvicorn.Server(config).run(sockets=[listening])
    else:
        Multiprocess(config, sockets=[listening]).run()
