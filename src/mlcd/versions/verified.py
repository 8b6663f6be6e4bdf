"""Every object a restore needs, checked by md5 before the restore changes anything.

DVC addresses objects by md5 but trusts what it downloads: a damaged remote copy lands in the
cache under the right name, `dvc status` calls it up to date and `dvc checkout` copies it back.
So a restore first downloads what the cache lacks into a temporary directory, hashes every
object (cached ones too), and only when all match moves the downloads into the cache. A damaged
cache copy is removed (it can only do harm) and fetched again from the remote.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.errors import VersionError
from mlcd.files import md5_file
from mlcd.git import short
from mlcd.versions.storage import ObjectStores, StoredObject, missing_lines, outputs_at


@dataclass(frozen=True)
class Verified:
    """Objects whose bytes match their md5, all in the local cache once `commit_to_cache` ran."""

    objects: list[StoredObject]
    cache_paths: dict[str, Path]  # md5 -> file in the local cache
    fetched: int  # objects that came from the remote
    repaired: list[str]  # damaged cache copies that were removed and fetched again


@dataclass(frozen=True)
class _Damage:
    path: str
    expected: str
    actual: str
    source: str

    def line(self) -> str:
        return f"{self.path}: expected md5 {self.expected}, got {self.actual} (from {self.source})"


class _Fetcher:
    """Hashes cached objects and downloads missing ones into `staging`; touches nothing else."""

    def __init__(self, stores: ObjectStores, staging: Path) -> None:
        self.stores = stores
        self.staging = staging
        self.downloads: dict[str, Path] = {}
        self.repaired: list[str] = []
        self.removed: list[str] = []  # damaged cache copies taken out, for the error message

    def cache_path(self, md5: str) -> Path:
        return Path(self.stores.cache.oid_to_path(md5))

    def get(self, path: str, md5: str) -> Path | _Damage | None:
        """A verified copy of the object, the damage found, or None when no store has it."""
        # A directory's `.dir` object is its JSON listing; its id is that file's md5 plus ".dir".
        cached = self.cache_path(md5)
        if cached.is_file():
            actual = md5_file(cached)
            if actual == md5.removesuffix(".dir"):
                return cached
            # Damaged in the cache (an older restore, a disk error): it would be checked out as good.
            cached.chmod(0o644)
            cached.unlink()
            self.removed.append(f"{path} (md5 {md5}, its bytes hash to {actual}): {cached}")
            self.repaired.append(path)
        if self.stores.remote is None or not self.stores.remote.exists(md5):
            return None
        target = self.staging / md5
        self.stores.remote.fs.get_file(self.stores.remote.oid_to_path(md5), str(target))
        actual = md5_file(target)
        if actual != md5.removesuffix(".dir"):
            source = f"{self.stores.describe_remote()}: {self.stores.remote.oid_to_path(md5)}"
            return _Damage(path, md5, actual, source)
        self.downloads[md5] = target
        return target


def verify_objects(root: Path, commit: str, label: str, only: str | None) -> Verified:
    """Fetch and check every object of `commit`'s outputs (or `only` that one); raise if any fails.

    On success every object is in the local cache with the right bytes. On failure the cache holds
    nothing new, damaged cache copies are gone, and the error names each bad or missing object.
    """
    stores = ObjectStores(root)
    (root / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mlcd-restore-", dir=root / ".dvc" / "tmp"))
    try:
        fetcher = _Fetcher(stores, staging)
        objects: list[StoredObject] = []
        missing: list[StoredObject] = []
        damaged: list[_Damage] = []
        for output, md5 in sorted(outputs_at(root, commit, only).items()):
            pending = [(output, md5)]
            while pending:
                path, oid = pending.pop(0)
                got = fetcher.get(path, oid)
                if got is None:
                    missing.append(StoredObject(path, oid, output, md5, in_cache=False, in_remote=False))
                elif isinstance(got, _Damage):
                    damaged.append(got)
                else:
                    in_cache = oid not in fetcher.downloads
                    objects.append(StoredObject(path, oid, output, md5, in_cache, in_remote=not in_cache))
                    if oid.endswith(".dir"):  # its listing names the directory's files
                        listing: list[dict[str, Any]] = json.loads(got.read_bytes())
                        pending += [(f"{output}/{e['relpath']}", e["md5"]) for e in listing]
        remote = stores.describe_remote()
        if damaged:
            raise VersionError(
                f"cannot restore {label} (commit {short(commit)}): {len(damaged)} file(s) are damaged: "
                "their bytes do not match the md5 dvc.lock records. Nothing was changed"
                + (" (damaged copies were removed from the local cache)" if fetcher.removed else "")
                + ". Fix: `dvc push` a good copy from a clone that has one, or rebuild them with "
                f"`git checkout {short(commit)} && dvc repro && dvc push`. Damaged:",
                [d.line() for d in damaged] + [f"removed from the cache: {r}" for r in fetcher.removed],
            )
        if missing:
            raise VersionError(
                f"cannot restore {label} (commit {short(commit)}): {len(missing)} file(s) are in neither "
                f"the local cache nor {remote}. Nothing was changed. Fix: run `dvc push` from a clone "
                f"that has them, or rebuild them with `git checkout {short(commit)} && dvc repro "
                "&& dvc push`. Missing:",
                missing_lines(root, missing),
            )
        for md5, download in fetcher.downloads.items():
            _into_cache(download, fetcher.cache_path(md5))
        paths = {o.md5: fetcher.cache_path(o.md5) for o in objects}
        return Verified(objects, paths, len(fetcher.downloads), fetcher.repaired)
    finally:
        stores.close()
        shutil.rmtree(staging, ignore_errors=True)


def _into_cache(download: Path, target: Path) -> None:
    """Move a verified download into the cache under its md5, read-only as DVC keeps its cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    moved = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(download, moved)
    moved.chmod(0o444)
    moved.replace(target)
