"""Where a stage's parallel work runs: in this process, or on the Dask cluster MLCD_DASK_SCHEDULER names.

Where a stage runs is not a parameter: it is never in params.yaml or dvc.lock, and every output
is the same wherever the work ran (the driver, this process, writes them all). The variable is
- unset or empty: no cluster, everything here, as without Dask;
- `local` or `local:N`: a LocalCluster of N worker processes (default 2) on 127.0.0.1, for a laptop
  with cores to spare or a test;
- `tcp://host:8786` (any address distributed's Client takes): a running scheduler and its workers,
  which need this project's environment (README "Scale out").
scikit-learn sends its fits through joblib, whose "dask" backend hands them to the cluster's workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from mlcd.errors import ClusterError

SCHEDULER_ENV = "MLCD_DASK_SCHEDULER"
LOCAL_WORKERS = 2
# How long to wait for a scheduler before saying it cannot be reached.
CONNECT_SECONDS = 10


@dataclass(frozen=True)
class Engine:
    """Where the work runs: `address` of the scheduler, or None for this process."""

    address: str | None
    workers: int = 1

    @property
    def parallel_jobs(self) -> int | None:
        """n_jobs for scikit-learn: every worker's slot on a cluster, one process without."""
        return -1 if self.address else None

    def describe(self) -> str:
        return f"Dask at {self.address} ({self.workers} workers)" if self.address else "this process"


def requested() -> str | None:
    value = os.environ.get(SCHEDULER_ENV, "").strip()
    return value or None


@contextmanager
def engine() -> Iterator[Engine]:
    """The engine MLCD_DASK_SCHEDULER picks, with joblib's work sent to it for the block."""
    address = requested()
    if address is None:
        yield Engine(None)
        return
    import joblib
    from distributed import LocalCluster

    local = _local_workers(address)
    cluster = (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=local,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",  # binds loopback only
            scheduler_port=0,
            dashboard_address=None,
        )
        if local
        else nullcontext()
    )
    with cluster as started:
        client = _connect(started if local else address)
        try:
            _same_versions(client)
            workers = len(client.scheduler_info()["workers"])
            with joblib.parallel_config(backend="dask"):
                yield Engine(client.scheduler.address, workers)
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
        return Client(target, timeout=CONNECT_SECONDS)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler {target!r} that {SCHEDULER_ENV} names within "
            f"{CONNECT_SECONDS} s ({type(exc).__name__}); start it, correct the address, or unset "
            f"{SCHEDULER_ENV} to run here"
        ) from None
    except ValueError as exc:  # an address distributed cannot parse
        raise ClusterError(f"{SCHEDULER_ENV}={target!r} is not a scheduler address: {exc}") from None


def _same_versions(client: Any) -> None:
    """distributed's own check: Python and the packages it cares about, client against scheduler and
    workers. Results computed with other versions would not be this lock's."""
    try:
        client.get_versions(check=True)
    except ValueError as exc:
        first = str(exc).strip().splitlines()
        raise ClusterError(
            f"the Dask cluster at {client.scheduler.address} runs other versions than this environment: "
            f"{' '.join(first[:6])}; give its workers this project's environment (uv sync, or the image)"
        ) from None
