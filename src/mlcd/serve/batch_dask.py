"""Batch scoring on a Dask cluster (MLCD_DASK_SCHEDULER set): the workers validate and score, the
driver reads the input and writes the output, in the input's order.

The workers need no shared storage: the bundle's files are sent to each worker once (a few
megabytes at most) and each batch travels with its task, so a batch whose worker dies is run
again elsewhere. At most WINDOW_PER_WORKER batches per worker are in flight, so the driver's
memory holds a bounded number of batches, whatever the table's size.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.serve.model import BundleModel
from mlcd.serve.scoring import Columns, score_batch

# Enough batches queued that no worker waits for the driver, few enough to bound the driver's memory.
WINDOW_PER_WORKER = 2


@dataclass(frozen=True)
class BundleFiles:
    """A bundle folder's files as bytes, named by their path in it: what a worker rebuilds it from."""

    digest: str
    files: dict[str, bytes]

    @classmethod
    def read(cls, bundle: Path) -> BundleFiles:
        files = {str(p.relative_to(bundle)): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}
        digest = hashlib.sha256()
        for name, data in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return cls(digest.hexdigest(), files)


# Per worker process: each bundle is written out and loaded once, then reused by every batch.
_MODELS: dict[str, BundleModel] = {}


def _worker_model(shipped: BundleFiles) -> BundleModel:
    model = _MODELS.get(shipped.digest)
    if model is None:
        folder = Path(tempfile.mkdtemp(prefix="mlcd-bundle-"))
        atexit.register(shutil.rmtree, folder, True)
        for name, data in shipped.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        model = _MODELS[shipped.digest] = BundleModel(folder)  # verifies every file against its manifest
    return model


def _score_on_worker(shipped: BundleFiles, columns: Columns, batch: Any, first_row: int) -> Any:
    return score_batch(_worker_model(shipped), columns, batch, first_row)


def scored_on_cluster(
    client: Any, workers: int, bundle: Path, columns: Columns, batches: Iterable[Any]
) -> Iterator[Any]:
    """Output tables in the input's order; a refused batch raises here and cancels the rest."""
    shipped = client.scatter(BundleFiles.read(bundle), broadcast=True, hash=False)
    window: deque[Any] = deque()
    read = 0
    try:
        for batch in batches:
            window.append(client.submit(_score_on_worker, shipped, columns, batch, read, pure=False))
            read += batch.num_rows
            if len(window) >= WINDOW_PER_WORKER * max(workers, 1):
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        client.cancel(list(window))
