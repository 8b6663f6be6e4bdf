"""Closed log files shipped to object storage (`mlcd serve --log-remote s3://bucket/prefix`), where
CI's retrain job and `mlcd monitor report` read them (`--log-dir s3://bucket/prefix`).

Uploads run on the log's writer thread after a file closes and when the log starts, never on
the request path. A file is shipped once: an empty marker `.<name>.shipped` beside it records the
upload, so a failed one (counted, warned) is tried again after the next close or start. boto3
reads credentials, region and AWS_ENDPOINT_URL from the environment, as every AWS tool does.
The local files stay 0600; who may read the bucket is the bucket's policy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.errors import MonitorError, ServeError

SCHEME = "s3://"
_SHIPPED = ".shipped"


@dataclass(frozen=True)
class Remote:
    bucket: str
    prefix: str  # without a trailing slash; may be empty

    @classmethod
    def parse(cls, url: str) -> Remote:
        bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
        if not url.startswith(SCHEME) or not bucket:
            raise ServeError(f"--log-remote {url!r}: give an S3 location, s3://bucket/prefix")
        return cls(bucket, prefix.strip("/"))

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


def client() -> Any:
    """An S3 client with short timeouts: a slow store delays shipping, never the API."""
    try:
        import boto3
        from botocore.config import Config
    except ModuleNotFoundError:
        raise ServeError("--log-remote needs boto3: uv sync, or pip install boto3") from None
    return boto3.client("s3", config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}))


def unshipped(files: list[Path]) -> list[Path]:
    return [path for path in files if not _marker(path).exists()]


def ship(remote: Remote, path: Path, s3: Any) -> None:
    """Upload one closed file, then mark it shipped."""
    s3.upload_file(str(path), remote.bucket, remote.key(path.name))
    _marker(path).touch(mode=0o600)


def _marker(path: Path) -> Path:
    return path.with_name(f".{path.name}{_SHIPPED}")


@contextmanager
def local_logs(location: str | Path) -> Iterator[Path]:
    """A log directory to read: `location` itself, or the closed files under an s3:// location
    downloaded into a temporary directory for the block."""
    if not str(location).startswith(SCHEME):
        yield Path(location)
        return
    remote = Remote.parse(str(location))
    folder = Path(tempfile.mkdtemp(prefix="mlcd-logs-"))
    try:
        s3 = client()
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=remote.bucket, Prefix=remote.key("") if remote.prefix else ""
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if name.endswith(".parquet") and not name.startswith("."):
                    s3.download_file(remote.bucket, item["Key"], str(folder / name))
        yield folder
    except ServeError as exc:
        raise MonitorError(exc.message) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):
            raise MonitorError(f"cannot read the logs at {location}: {exc}") from None
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
