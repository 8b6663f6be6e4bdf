import os

import pytest

from mlcd.files import atomic_dir, atomic_path, human_size, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "data.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_directory_keeps_the_old_one(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old").write_text("kept")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new").write_text("lost")
        raise RuntimeError("crash")
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]
    assert (target / "old").read_text() == "kept"


def test_published_files_get_umask_modes(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    mode = (tmp_path / "m.json").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


@pytest.mark.parametrize(("size", "text"), [(12, "12 B"), (2048, "2.0 KB"), (5 * 2**20, "5.0 MB")])
def test_human_size(size, text):
    assert human_size(size) == text


def test_a_killed_write_leaves_a_temporary_the_next_write_removes(tmp_path):
    """SIGKILL runs no `finally`: the leftover is ignored by git and cleaned by the next run."""
    import signal
    import subprocess
    import sys

    from ..helpers import PROJECT_ROOT

    target = tmp_path / "models" / "bundle"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from mlcd.files import atomic_dir\n"
        "with atomic_dir(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'model.onnx').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    assert done.returncode == -signal.SIGKILL
    (leftover,) = target.parent.iterdir()
    assert leftover.name.startswith(".bundle.") and leftover.name.endswith(".tmp")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", f"models/{leftover.name}/model.onnx"], cwd=PROJECT_ROOT
    )
    assert ignored.returncode == 0, "git would show the leftover as untracked"
    with atomic_dir(target) as tmp:
        (tmp / "model.onnx").write_bytes(b"whole")
    assert [p.name for p in target.parent.iterdir()] == ["bundle"]
