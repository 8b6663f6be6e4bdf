"""Where a stage's parallel work runs: in this process, or on the Dask cluster MLCD_DASK_SCHEDULER names.

Where a stage runs is not a parameter: it is never in params.yaml or dvc.lock, and every output
is the same wherever the work ran (the driver, this process, writes them all). The variable is
- unset or empty: no cluster, everything here, as without Dask;
- `local` or `local:N`: a LocalCluster of N worker processes (default 2) on 127.0.0.1, for a laptop
  with cores to spare or a test;
- `tcp://host:8786` (any address distributed's Client takes): a running scheduler and its workers,
  which need this project's environment (README "Scale out").
scikit-learn sends its fits through joblib, whose "dask" backend hands them to the cluster's workers;
batch scoring submits its batches to the client directly (serve/batch_dask.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from mlcd.errors import ClusterError

SCHEDULER_ENV = "MLCD_DASK_SCHEDULER"
LOCAL_WORKERS = 2
# How long to wait for a scheduler, or for its first worker, before saying it cannot be reached.
CONNECT_SECONDS = 10
# Packages a result depends on, compared beside Python and distributed's own (dask, distributed,
# msgpack, cloudpickle, tornado, toolz, numpy, pandas, lz4).
RESULT_PACKAGES = ("scikit-learn", "scipy", "joblib", "pyarrow")


@dataclass(frozen=True)
class Engine:
    """Where the work runs: `address` of the scheduler, or None for this process."""

    address: str | None
    workers: int = 1
    client: Any = field(default=None, repr=False, compare=False)  # distributed's Client, for direct tasks

    @property
    def parallel_jobs(self) -> int | None:
        """n_jobs for scikit-learn: every worker's slot on a cluster, one process without."""
        return -1 if self.address else None

    def describe(self) -> str:
        return f"Dask at {self.address} ({self.workers} workers)" if self.address else "this process"


def requested() -> str | None:
    value = os.environ.get(SCHEDULER_ENV, "").strip()
    return value or None


def loopback_cluster(workers: int, **options: Any) -> Any:
    """A LocalCluster of `workers` single-threaded processes bound to 127.0.0.1 only (distributed's
    own keywords in `options`, e.g. memory_limit)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
        # No dashboard, but the scheduler still serves /health and /metrics over HTTP, by default on
        # 8787 (the next free port, with a warning, when two clusters run): a free port instead.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        **options,
    )


@contextmanager
def engine() -> Iterator[Engine]:
    """The engine MLCD_DASK_SCHEDULER picks, with joblib's work sent to it for the block."""
    address = requested()
    if address is None:
        yield Engine(None)
        return
    import joblib

    local = _local_workers(address)
    cluster = loopback_cluster(local) if local else nullcontext()
    with cluster as started:
        client = _connect(started if local else address)
        try:
            _has_workers(client)
            _same_versions(client)
            workers = len(client.scheduler_info()["workers"])
            with joblib.parallel_config(backend="dask"):
                yield Engine(client.scheduler.address, workers, client)
        except _lost_work_errors() as exc:
            raise ClusterError(
                f"a Dask worker of {client.scheduler.address} died while it held part of the work "
                f"({type(exc).__name__}); nothing was written. Look in the workers' logs (memory "
                "limit?), then run again"
            ) from None
        finally:
            client.close()


def _local_workers(address: str) -> int:
    """N for `local` / `local:N`; 0 for a scheduler's address."""
    if address == "local":
        return LOCAL_WORKERS
    if not address.startswith("local:"):
        return 0
    count = address.removeprefix("local:")
    if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= 256:
        raise ClusterError(
            f"{SCHEDULER_ENV}={address!r}: write local:N with N worker processes from 1 to 256"
        )
    return int(count)


def _connect(target: Any) -> Any:
    from distributed import Client

    try:
        return Client(target, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler {target!r} that {SCHEDULER_ENV} names within "
            f"{CONNECT_SECONDS} s ({type(exc).__name__}); start it, correct the address, or unset "
            f"{SCHEDULER_ENV} to run here"
        ) from None
    except ValueError as exc:  # an address distributed cannot parse
        raise ClusterError(f"{SCHEDULER_ENV}={target!r} is not a scheduler address: {exc}") from None


def _has_workers(client: Any) -> None:
    """A scheduler without workers would take the work and never run it."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_SECONDS)
    except TimeoutError:
        raise ClusterError(
            f"the Dask scheduler at {client.scheduler.address} has no workers after {CONNECT_SECONDS} s; "
            f"start some (`dask worker {client.scheduler.address}`) or unset {SCHEDULER_ENV}"
        ) from None


def _same_versions(client: Any) -> None:
    """Python, distributed's own packages and those a result depends on, here against the scheduler
    and every worker: a fit made with another scikit-learn or numpy is not the fit this lock records.
    (distributed's `get_versions(check=True)` only warns, however far apart the versions are.)"""
    from distributed.versions import scheduler_relevant_packages

    found = client.get_versions(packages=list(RESULT_PACKAGES))
    here: dict[str, str | None] = found["client"]["packages"]
    places = {"the scheduler": found["scheduler"]["packages"]}
    places.update({f"worker {name}": info["packages"] for name, info in found["workers"].items()})
    differences = []
    for package, version in sorted(here.items()):
        elsewhere: dict[str, list[str]] = {}
        for place, theirs in places.items():
            if place == "the scheduler" and package not in scheduler_relevant_packages:
                continue  # the scheduler runs no fits
            other = (theirs or {}).get(package, "unknown")
            if other != version:
                elsewhere.setdefault(_shown(other), []).append(place)
        differences += [
            f"{package} {_shown(version)} here, {other} on {_places(where)}"
            for other, where in elsewhere.items()
        ]
    if differences:
        raise ClusterError(
            f"the Dask cluster at {client.scheduler.address} runs other versions than this environment "
            f"({'; '.join(differences)}); give its scheduler and workers this project's environment "
            "(uv sync, or the image)"
        )


def _places(where: list[str]) -> str:
    return where[0] if len(where) == 1 else f"{len(where)} places"


def _shown(version: str | None) -> str:
    return "not installed" if version is None else version


def _lost_work_errors() -> tuple[type[BaseException], ...]:
    """What a task's future raises when the worker running it, or holding its data, died: the
    scheduler gave up on it (KilledWorker), or cancelled it for the data it lost with the worker
    (joblib scatters the training data to one worker, and scattered data cannot be recomputed)."""
    from concurrent.futures import CancelledError

    from distributed.scheduler import KilledWorker

    return (KilledWorker, CancelledError)
