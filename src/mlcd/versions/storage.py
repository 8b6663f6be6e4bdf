"""Where a revision's DVC outputs can be found: the local cache, the default remote, or nowhere.

Restore and release ask this before touching anything, so a missing `dvc push`
is reported file by file instead of failing halfway through a checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvc.repo import Repo as DvcRepo
from dvc_data.index.index import DataIndexError

from mlcd.config import LOCK_FILE
from mlcd.dvcfiles import cached_outputs_at
from mlcd.errors import VersionError
from mlcd.git import first_commit_containing

# What reading a committed output through DVCFileSystem raises when no cache or remote here
# holds it: OSError for a file, DataIndexError (not an OSError) for a directory whose .dir
# listing is missing (an empty remote on another runner; measured with dvc 3.x).
NOT_IN_ANY_STORE: tuple[type[Exception], ...] = (OSError, DataIndexError)


@dataclass(frozen=True)
class StoredObject:
    path: str  # workspace path of the file
    md5: str
    output: str  # the dvc.lock output it belongs to
    output_md5: str
    in_cache: bool
    in_remote: bool


class ObjectStores:
    """The local cache and the default remote of a DVC repo, asked by md5."""

    def __init__(self, root: Path) -> None:
        self.repo = DvcRepo(str(root))
        self.cache = self.repo.cache.local
        try:
            remote = self.repo.cloud.get_remote()
        except Exception:  # dvc raises several types for "no usable remote"
            self.remote, self.remote_where = None, "no DVC remote is configured"
        else:
            self.remote = remote.odb
            self.remote_where = f"remote {remote.name!r} ({remote.path})"

    def describe_remote(self) -> str:
        return self.remote_where

    def where(self, md5: str) -> tuple[bool, bool]:
        in_remote = self.remote is not None and self.remote.exists(md5)
        return self.cache.exists(md5), in_remote

    def dir_listing(self, md5: str) -> list[dict[str, str]] | None:
        for store in (self.cache, self.remote):
            if store is not None and store.exists(md5):
                listing: list[dict[str, str]] = json.loads(store.fs.cat_file(store.oid_to_path(md5)))
                return listing
        return None

    def close(self) -> None:
        self.repo.close()


def copy_out(fs: Any, path: str, target: Path) -> None:
    """Copy the directory output `path` as a DVCFileSystem sees it (cache or remote) into `target`."""
    for name in fs.ls(path, detail=False):
        fs.get_file(name, str(target / Path(name).name))


def outputs_at(root: Path, commit: str, only: str | None = None) -> dict[str, str]:
    outputs = cached_outputs_at(root, commit)
    if outputs is None:
        raise VersionError(f"commit {commit[:8]} has no dvc.yaml/dvc.lock: it holds no pipeline outputs")
    if only is not None:
        outputs = {path: md5 for path, md5 in outputs.items() if path == only}
    return outputs


def missing_lines(root: Path, missing: list[StoredObject]) -> list[str]:
    lines = []
    for item in missing:
        producer = first_commit_containing(root, item.output_md5.removesuffix(".dir"), LOCK_FILE)
        made_by = f"produced by commit {producer[:8]}" if producer else "producing commit unknown"
        lines.append(f"{item.path} (md5 {item.md5}), {made_by}")
    return lines
