"""Writing outputs so a failed or interrupted stage never leaves half a file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# mkstemp/mkdtemp create private (0600/0700) files; published outputs get the usual modes.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


_TEMP_SUFFIX = ".tmp"


def remove_leftovers(target: Path) -> None:
    """Delete temporary siblings of `target` that a killed run left behind (no `finally` ran).

    DVC holds the repository lock while a stage runs, so no other writer owns them.
    """
    for stale in target.parent.glob(f"{_temp_prefix(target)}*{_TEMP_SUFFIX}"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; move it into place only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=_TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(_FILE_MODE)
        if target.is_dir() and not target.is_symlink():  # a table written in parts before
            shutil.rmtree(target)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Like atomic_path for a directory: build it aside, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=_TEMP_SUFFIX, dir=target.parent))
    try:
        yield tmp
        tmp.chmod(_DIR_MODE)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():  # e.g. a table written whole before
            target.unlink()
        tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def dump_json(value: Any) -> str:
    # Sorted keys and a trailing newline keep files byte-stable and diff-friendly.
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(target: Path, value: Any) -> None:
    write_bytes(target, dump_json(value).encode("utf-8"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Run `writer(tmp)` and publish its file at `target` only if it succeeds."""
    with atomic_path(target) as tmp:
        writer(tmp)


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def md5_file(path: Path) -> str:
    """DVC's content hash (its cache and remotes address files by it)."""
    return file_digest(path, "md5")


def human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
