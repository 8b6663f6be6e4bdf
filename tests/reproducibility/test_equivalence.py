"""Telling float noise from real change, file kind by file kind."""

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcd.reproducibility.equivalence import (
    VALUE_TOLERANCE,
    Comparison,
    Verdict,
    compare_bytes,
    compare_output,
    compare_png,
    json_difference,
    overall,
)


def _json(value) -> bytes:
    return json.dumps(value).encode()


def test_json_noise_is_equivalent_and_a_real_change_is_different():
    base = {"roc_auc": 0.987592, "curve": [{"fpr": 0.0, "threshold": 0.529535}], "model_hash": "a" * 64}
    noise = {"roc_auc": 0.987593, "curve": [{"fpr": 0.0, "threshold": 0.529534}], "model_hash": "b" * 64}
    verdict, detail = compare_bytes("m.json", _json(base), _json(noise), None)
    assert verdict is Verdict.EQUIVALENT and "1e-06" in detail
    real = {**base, "roc_auc": 0.95}
    verdict, detail = compare_bytes("m.json", _json(base), _json(real), None)
    assert verdict is Verdict.DIFFERENT and f"tolerance {VALUE_TOLERANCE:g}" in detail
    verdict, detail = compare_bytes("m.json", _json(base), _json({**base, "curve": []}), None)
    assert verdict is Verdict.DIFFERENT and "curve: 1 -> 0 entries" in detail


def test_text_and_structure_must_match_exactly():
    assert json_difference({"label": "benign"}, {"label": "malignant"})[1] == "label: 'benign' -> 'malignant'"
    assert json_difference({"a": 1}, {"b": 1})[1] == "keys: keys ['a', 'b'] differ"
    assert json_difference([True], [False])[1] == "[0]: True -> False"
    assert json_difference({"x": 1e9}, {"x": 1e9 + 1}) == (pytest.approx(1e-9), None)  # relative


def _parquet(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def test_parquet_is_compared_by_content_not_bytes():
    table = pa.table({"x": [1.0, 2.0], "y": ["a", "b"]})
    verdict, _ = compare_bytes("d.parquet", _parquet(table), _parquet(table, compression="gzip"), None)
    assert verdict is Verdict.EQUIVALENT
    changed = pa.table({"x": [1.0, 2.5], "y": ["a", "b"]})
    verdict, detail = compare_bytes("d.parquet", _parquet(table), _parquet(changed), None)
    assert verdict is Verdict.DIFFERENT and "['x']" in detail


def _png(values: np.ndarray) -> bytes:
    from matplotlib.image import imsave

    sink = io.BytesIO()
    imsave(sink, values, format="png", cmap="gray", vmin=0, vmax=1)
    return sink.getvalue()


def test_figures_by_pixel_rms():
    image = np.zeros((200, 200))  # a figure is 500 x 450: one pixel is noise, a moved curve is not
    one_pixel = image.copy()
    one_pixel[3, 3] = 0.5
    assert compare_png(_png(image), _png(one_pixel))[0] is Verdict.EQUIVALENT
    moved_line = image.copy()
    moved_line[:, 100] = 1.0
    assert compare_png(_png(image), _png(moved_line))[0] is Verdict.DIFFERENT
    assert compare_png(_png(image), _png(np.zeros((100, 200))))[0] is Verdict.DIFFERENT


def test_unknown_files_that_differ_are_different_and_models_need_a_test_split():
    assert compare_bytes("x.bin", b"a", b"b", None)[0] is Verdict.DIFFERENT
    assert compare_bytes("x.bin", b"a", b"a", None)[0] is Verdict.IDENTICAL
    assert compare_bytes("m.onnx", b"a", b"b", None)[0] is Verdict.UNVERIFIED


def test_overall_ignores_what_could_not_be_compared():
    def c(verdict: Verdict) -> Comparison:
        return Comparison("train", "m", verdict, "")

    assert overall([]) is Verdict.IDENTICAL
    assert overall([c(Verdict.UNVERIFIED)]) is Verdict.IDENTICAL
    assert overall([c(Verdict.UNVERIFIED), c(Verdict.EQUIVALENT)]) is Verdict.EQUIVALENT
    assert overall([c(Verdict.EQUIVALENT), c(Verdict.DIFFERENT)]) is Verdict.DIFFERENT


def _git_dvc_repo(root: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(args, cwd=root, check=True, capture_output=True)

    run("git", "init", "-q")
    run("git", "config", "user.email", "t@example.com")
    run("git", "config", "user.name", "t")
    run("dvc", "init", "-q")


@pytest.mark.slow  # real git and dvc commands
@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_committed_output_no_cache_or_remote_holds_is_not_compared(tmp_path: Path, kind: str):
    """Another runner's empty remote: the committed copy cannot be read, which is not a failure."""
    from dvc.api import DVCFileSystem

    _git_dvc_repo(tmp_path)
    output = tmp_path / "out"
    if kind == "directory":
        output.mkdir()
        (output / "a.json").write_text("[1]")
    else:
        output.write_text("[1]")
    (tmp_path / "remote").mkdir()
    remote = ["dvc", "remote", "add", "-q", "-d", "r", str(tmp_path / "remote")]
    for args in (["dvc", "add", "-q", "out"], remote):
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "out"], cwd=tmp_path, check=True)
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    (output / "a.json" if kind == "directory" else output).write_text("[2]")

    found = compare_output("s", "out", tmp_path, DVCFileSystem(str(tmp_path), rev="HEAD"), None)
    assert [c.verdict for c in found] == [Verdict.UNVERIFIED]
