"""Batch scoring on a Dask cluster (MLCD_DASK_SCHEDULER set): the workers validate and score, the
driver writes the output, in the input's order.

Parquet inputs are read by the workers themselves, a row group per task (`RowGroups`): the
driver sends a file name and row-group numbers, not data, so it only writes what comes back.
That needs the input on storage every worker sees (the same machine, a shared file system).
CSV inputs have no row groups to hand out: the driver reads them and each batch travels with
its task. Either way a task whose worker dies is run again elsewhere, and the bundle's files are
sent to each worker once (a few megabytes at most). At most WINDOW_PER_WORKER tasks per worker
are in flight, so the driver's memory is bounded whatever the table's size.
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

from mlcd.errors import SourceError
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


@dataclass(frozen=True)
class RowGroups:
    """Rows a worker reads itself: row groups of one Parquet file, the first being row `first_row`."""

    path: str
    groups: list[int]
    first_row: int


def row_groups(files: Iterable[Path]) -> Iterator[RowGroups]:
    """Every non-empty row group of the files, in order, with its first row's position."""
    from mlcd.data.tables import unbuffered_parquet

    first = 0
    for path in files:
        metadata = unbuffered_parquet(path).metadata
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            if rows:
                yield RowGroups(str(path.resolve()), [group], first)
            first += rows


def _score_batches(shipped: BundleFiles, columns: Columns, batch: Any, first_row: int) -> list[Any]:
    return [score_batch(_worker_model(shipped), columns, batch, first_row)]


def _read_and_score(shipped: BundleFiles, columns: Columns, part: RowGroups, batch_rows: int) -> list[Any]:
    from mlcd.data.tables import unbuffered_parquet

    try:
        reader = unbuffered_parquet(Path(part.path))
    except OSError as exc:
        raise SourceError(
            f"a Dask worker cannot read {part.path} ({exc}): workers read Parquet inputs themselves, "
            "so put the input on storage every worker sees, or score a CSV (the driver sends it)"
        ) from None
    model, scored, first = _worker_model(shipped), [], part.first_row
    for batch in reader.iter_batches(batch_size=batch_rows, row_groups=part.groups, columns=columns.read):
        if batch.num_rows:
            scored.append(score_batch(model, columns, batch, first))
            first += batch.num_rows
    return scored


def scored_on_cluster(
    client: Any, workers: int, bundle: Path, columns: Columns, work: Iterable[Any], batch_rows: int
) -> Iterator[Any]:
    """Output tables in the input's order; a refused batch raises here and cancels the rest.

    `work`: RowGroups the workers read, or record batches the driver read.
    """
    shipped = client.scatter(BundleFiles.read(bundle), broadcast=True, hash=False)
    window: deque[Any] = deque()
    read = 0
    try:
        for item in work:
            if isinstance(item, RowGroups):
                task = client.submit(_read_and_score, shipped, columns, item, batch_rows, pure=False)
            else:
                task = client.submit(_score_batches, shipped, columns, item, read, pure=False)
                read += item.num_rows
            window.append(task)
            if len(window) >= WINDOW_PER_WORKER * max(workers, 1):
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()
    finally:
        client.cancel(list(window))
