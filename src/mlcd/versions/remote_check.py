"""What the DVC remote really holds for a revision: every object read back and its md5 checked.

`dvc push` skips an object whose name already exists in the remote, so a truncated or damaged
copy stays there for good and every existence check passes. Release, verify-release and
promote therefore read the bundle's objects back from the remote and hash them (every output's
with --verify-data); `mlcd remote verify --repair` replaces bad copies with verified ones
from the local cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.errors import VersionError
from mlcd.files import md5_file
from mlcd.git import short
from mlcd.versions.storage import ObjectStores, outputs_at

CHUNK = 1 << 20
MISSING = "missing from the remote"


@dataclass(frozen=True)
class RemoteObject:
    path: str  # workspace path of the file (a directory's listing is `<dir>/ (listing)`)
    md5: str
    problem: str | None  # None: present with the right bytes; else what is wrong
    repaired: bool = False

    def line(self) -> str:
        repaired = " -> re-uploaded from the local cache" if self.repaired else ""
        return f"{self.path} (md5 {self.md5}): {self.problem or 'ok'}{repaired}"


@dataclass(frozen=True)
class RemoteReport:
    commit: str
    remote: str
    objects: list[RemoteObject]

    @property
    def bad(self) -> list[RemoteObject]:
        return [o for o in self.objects if o.problem and not o.repaired]


def _remote_md5(stores: ObjectStores, md5: str) -> str | None:
    """The md5 of the remote's copy of object `md5`, or None when the remote has no such object."""
    assert stores.remote is not None
    path = stores.remote.oid_to_path(md5)
    if not stores.remote.fs.exists(path):
        return None
    digest = hashlib.md5()
    with stores.remote.fs.open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(
    stores: ObjectStores, output: str, md5: str, read_back: bool
) -> Iterator[tuple[str, str, str | None]]:
    """(path, md5, problem) for an output and, for a directory, every file its listing names."""
    if read_back:
        actual = _remote_md5(stores, md5)
        problem = (
            None
            if actual == md5.removesuffix(".dir")
            else (MISSING if actual is None else f"damaged in the remote (its bytes hash to {actual})")
        )
    else:
        problem = None if stores.where(md5)[1] else MISSING
    label = f"{output}/ (listing)" if md5.endswith(".dir") else output
    yield label, md5, problem
    if md5.endswith(".dir"):
        listing = _listing(stores, md5)
        for entry in listing or []:
            yield from _walk(stores, f"{output}/{entry['relpath']}", entry["md5"], read_back)


def _listing(stores: ObjectStores, md5: str) -> list[dict[str, Any]] | None:
    """A directory's listing from a copy whose md5 is right (the cache's or the remote's)."""
    for store in (stores.cache, stores.remote):
        if store is None or not store.exists(md5):
            continue
        text = store.fs.cat_file(store.oid_to_path(md5))
        if hashlib.md5(text).hexdigest() == md5.removesuffix(".dir"):
            listing: list[dict[str, Any]] = json.loads(text)
            return listing
    return None


def check_remote(root: Path, commit: str, read_back: set[str] | None) -> RemoteReport:
    """Every cached output's objects of `commit` in the default remote.

    `read_back`: the outputs whose objects are downloaded and hashed (None: every output); the
    others are checked for existence only.
    """
    stores = ObjectStores(root)
    try:
        if stores.remote is None:
            raise VersionError(f"{stores.describe_remote()}: `dvc remote add -d NAME URL` first")
        objects = [
            RemoteObject(path, oid, problem)
            for output, md5 in sorted(outputs_at(root, commit).items())
            for path, oid, problem in _walk(stores, output, md5, read_back is None or output in read_back)
        ]
        return RemoteReport(commit, stores.describe_remote(), objects)
    finally:
        stores.close()


def require_good_remote(root: Path, commit: str, read_back: set[str] | None) -> int:
    """Raise unless every output of `commit` is in the remote, `read_back` ones with the right bytes."""
    report = check_remote(root, commit, read_back)
    bad = report.bad
    if bad and all(o.problem == MISSING for o in bad):
        raise VersionError(
            f"{len(bad)} outputs of commit {short(commit)} are not in {report.remote}; run `dvc push` first:",
            [f"{o.path} (md5 {o.md5})" for o in bad],
        )
    if bad:
        raise VersionError(
            f"{len(bad)} object(s) of commit {short(commit)} are missing or damaged in {report.remote}: "
            f"`mlcd remote verify --repair {short(commit)}` re-uploads good copies from the local cache "
            "(`dvc push` does not replace a damaged copy):",
            [o.line() for o in bad],
        )
    return len(report.objects)


def repair_remote(root: Path, report: RemoteReport) -> RemoteReport:
    """Upload the local cache's copy of each bad object, when that copy's md5 is right."""
    stores = ObjectStores(root)
    try:
        assert stores.remote is not None
        fixed = []
        for item in report.objects:
            cached = Path(stores.cache.oid_to_path(item.md5))
            good_copy = cached.is_file() and md5_file(cached) == item.md5.removesuffix(".dir")
            if item.problem is None or not good_copy:
                fixed.append(item)
                continue
            target = stores.remote.oid_to_path(item.md5)
            if stores.remote.fs.exists(target):
                stores.remote.fs.rm(target)
            stores.remote.fs.put_file(str(cached), target)
            fixed.append(RemoteObject(item.path, item.md5, item.problem, repaired=True))
        return RemoteReport(report.commit, report.remote, fixed)
    finally:
        stores.close()
