"""Fault catalogue, pipeline side (README "Reliability"): real dvc, a real full disk, a silent remote.

Each case checks that nothing was lost or half-written and that the one line printed names the fix.
"""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from ..helpers import Repo, new_repo, run

pytestmark = pytest.mark.e2e


def test_an_empty_dvc_lock_names_the_fix_and_report_prints_no_traceback(repo_copy: Repo):
    """What a `dvc repro` killed while writing dvc.lock leaves: a file of 0 bytes."""
    (repo_copy.path / "dvc.lock").write_bytes(b"")
    done = repo_copy.mlcd("report", "--no-post", "--base", "HEAD", "--out", "out", check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "git checkout HEAD -- dvc.lock" in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")]
    warned = repo_copy.mlcd("params")  # any command says so first
    assert "warning: dvc.lock is empty" in warned.stderr
    repo_copy.run("git", "checkout", "HEAD", "--", "dvc.lock")  # the fix it names
    assert repo_copy.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_a_full_disk_during_a_stage_is_one_line_and_publishes_nothing(project: Path, small_disk: Path):
    for stage in ("ingest", "validate"):
        run(["mlcd", stage], project)
    processed = project / "data" / "processed"
    shutil.rmtree(processed, ignore_errors=True)  # the project copy may hold an empty folder
    processed.symlink_to(small_disk, target_is_directory=True)
    done = run(["mlcd", "preprocess"], project, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no space left on the device"), done.stderr
    assert "df -h" in lines[0]
    assert list(small_disk.iterdir()) == []  # no split, and no hidden temporary file


@pytest.fixture
def silent_endpoint():
    """A loopback port that accepts connections and never answers (a blackholed S3 endpoint)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def test_a_remote_that_never_answers_gives_up_in_bounded_time(tmp_path, silent_endpoint):
    repo = new_repo(tmp_path / "repo")
    env = {
        "DVC_REMOTE_URL": "s3://mlcd/cache",
        "DVC_REMOTE_ENDPOINT_URL": silent_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MLCD_REMOTE_TIMEOUT": "3",
    }
    started = time.monotonic()
    done = repo.mlcd("ci", "reproduce", env=env, check=False)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert "asking the DVC remote s3://mlcd/cache" in done.stderr  # what it is waiting on
    assert "did not answer within 3 s" in done.stderr and "MLCD_REMOTE_TIMEOUT" in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 60, f"gave up after {took:.0f} s"
    bad = repo.mlcd("ci", "reproduce", env={**env, "MLCD_REMOTE_TIMEOUT": "soon"}, check=False)
    assert bad.returncode == 2 and "MLCD_REMOTE_TIMEOUT='soon' is not a number of seconds" in bad.stderr


def test_a_leftover_of_a_killed_stage_is_cleaned_after_a_run_cache_restore(repo_copy: Repo):
    """A stage killed mid-write leaves `.model.skops.<random>.tmp`; a run restored from DVC's
    run-cache runs none of mlcd's code, so the next mlcd command removes it."""
    leftover = repo_copy.path / "models" / ".model.skops.k1ll3d.tmp"
    leftover.write_bytes(b"half a model")  # what atomic_path's killed writer leaves
    (repo_copy.path / "models" / "model.skops").unlink()
    restored = repo_copy.dvc("repro")
    assert "restored" in (restored.stdout + restored.stderr).lower() or "checking out" in restored.stdout
    assert leftover.exists()  # DVC knows nothing of it
    repo_copy.mlcd("params")
    assert not leftover.exists()
    assert (repo_copy.path / "models" / "model.skops").is_file()
