"""Float noise or a real change? Judge a reproduced output whose bytes differ from the committed one.

Another CPU (or a BLAS kernel mlcd could not pin) sums floats in another order, so a
model's coefficients and everything computed from them can differ in their last bits.
Comparing bytes would call that non-determinism. Here each output is compared by what
it means instead:
- data files (Parquet) by content: the same columns, types and values;
- a model (skops or ONNX) by its predictions on the test split, within the ONNX parity
  tolerance that packaging already accepts between scikit-learn and ONNX;
- metrics and plot data (JSON) value by value, within VALUE_TOLERANCE;
- figures (PNG) by the RMS of their pixel difference, within IMAGE_TOLERANCE;
- whatever a model trained by XGBoost across Dask workers leads to, by its test metrics
  (judge_by_metrics): its split points depend on how the rows fell across the cluster's workers,
  so its predictions move by more than float noise. Each gated metric must stay within the gate's
  own max_drop, either way: the change a merge request may make to a metric without being called a
  regression.

The committed copy comes through DVC at HEAD: git for `cache: false` outputs, the DVC
cache or remote for the rest. An output whose committed copy is in neither cannot be
compared; it is reported as unverified, and the job does not fail on it.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from mlcd.tolerance import relative_difference, relative_differences
from mlcd.versions.storage import NOT_IN_ANY_STORE

# Metrics and plot data: within VALUE_TOLERANCE by tolerance.relative_difference(committed, reproduced).
# Float noise moves them in the 6th decimal at most (measured: 1e-6 on plot thresholds).
VALUE_TOLERANCE = 1e-4
# Figures: root-mean-square of the pixel difference on a 0-255 scale, matplotlib's own
# measure for image tests. Noise moves a line by under a pixel; a changed curve moves it more.
IMAGE_TOLERANCE = 2.0
_DIGEST = re.compile(r"^[0-9a-f]{32,64}$")


class Verdict(IntEnum):
    """Ordered by how much they say against the committed lock; UNVERIFIED says nothing either way."""

    UNVERIFIED = -1
    IDENTICAL = 0
    EQUIVALENT = 1
    DIFFERENT = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Comparison:
    stage: str
    path: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.verdict}: stage '{self.stage}' {self.path}: {self.detail}"


@dataclass(frozen=True)
class ModelCheck:
    """What a model is judged on: its test split and how far predictions may move."""

    features: Any  # the test split's features, as evaluate reads them
    tolerance: float
    # (features, the model's own input names) -> its inputs
    onnx_feeds: Callable[[Any, list[str]], dict[str, np.ndarray]]


# -- values ------------------------------------------------------------------------------------------


def json_difference(old: Any, new: Any, where: str = "") -> tuple[float, str | None]:
    """(largest relative numeric difference, first structural mismatch or None).

    Hex digests (model_hash, sha256 of a file) may differ: they hash a file this
    comparison judges on its own.
    """
    if isinstance(old, bool) or isinstance(new, bool) or old is None or new is None:
        return 0.0, None if old == new else f"{where or 'value'}: {old!r} -> {new!r}"
    if isinstance(old, int | float) and isinstance(new, int | float):
        if math.isnan(old) and math.isnan(new):
            return 0.0, None
        return relative_difference(old, new), None
    if isinstance(old, str) and isinstance(new, str):
        if old == new or (_DIGEST.match(old) and _DIGEST.match(new)):
            return 0.0, None
        return 0.0, f"{where or 'value'}: {old!r} -> {new!r}"
    if isinstance(old, dict) and isinstance(new, dict):
        if old.keys() != new.keys():
            return 0.0, f"{where or 'keys'}: keys {sorted(old.keys() ^ new.keys())} differ"
        pairs: Iterator[tuple[Any, Any, str]] = ((old[k], new[k], f"{where}.{k}".lstrip(".")) for k in old)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return 0.0, f"{where or 'list'}: {len(old)} -> {len(new)} entries"
        pairs = ((a, b, f"{where}[{i}]") for i, (a, b) in enumerate(zip(old, new, strict=True)))
    else:
        return 0.0, f"{where or 'value'}: {type(old).__name__} -> {type(new).__name__}"
    worst = 0.0
    for a, b, at in pairs:
        difference, mismatch = json_difference(a, b, at)
        if mismatch:
            return worst, mismatch
        worst = max(worst, difference)
    return worst, None


def _judge(difference: float, tolerance: float, what: str) -> tuple[Verdict, str]:
    verdict = Verdict.EQUIVALENT if difference <= tolerance else Verdict.DIFFERENT
    return verdict, f"{what} differ by up to {difference:.2g} (tolerance {tolerance:g})"


def compare_json(old: bytes, new: bytes) -> tuple[Verdict, str]:
    difference, mismatch = json_difference(json.loads(old), json.loads(new))
    if mismatch:
        return Verdict.DIFFERENT, f"not the same structure or text: {mismatch}"
    return _judge(difference, VALUE_TOLERANCE, "values")


def judge_by_metrics(old: bytes, new: bytes, limits: dict[str, float]) -> tuple[Verdict, str]:
    """Evaluate's metrics (JSON) of two models trained on different cluster shapes: equivalent when
    each metric in `limits` moved by at most its limit, never identical."""
    before, after = json.loads(old), json.loads(new)
    if before.keys() != after.keys():
        return Verdict.DIFFERENT, f"test metrics are not the same set: {sorted(before.keys() ^ after.keys())}"
    moved = {name: abs(after[name] - before[name]) for name in limits if name in before}
    if not moved:
        return Verdict.DIFFERENT, f"no gated metric to judge by among {sorted(before)}"
    outside = [name for name, change in moved.items() if change > limits[name]]
    shown = ", ".join(
        f"{name} {before[name]} -> {after[name]} ({change:.2g}, limit {limits[name]:g})"
        for name, change in moved.items()
    )
    if outside:
        return Verdict.DIFFERENT, f"test metrics moved past the gate's max_drop in {outside}: {shown}"
    return Verdict.EQUIVALENT, f"test metrics within the gate's max_drop: {shown}"


def compare_parquet(old: bytes, new: bytes) -> tuple[Verdict, str]:
    import pyarrow.parquet as pq

    before, after = pq.read_table(io.BytesIO(old)), pq.read_table(io.BytesIO(new))
    if before.schema.remove_metadata() != after.schema.remove_metadata():
        return Verdict.DIFFERENT, f"columns or types differ: {before.schema.names} -> {after.schema.names}"
    if before.num_rows != after.num_rows:
        return Verdict.DIFFERENT, f"{before.num_rows:,} -> {after.num_rows:,} rows"
    changed = [name for name in before.column_names if not before[name].equals(after[name])]
    if changed:
        return Verdict.DIFFERENT, f"values differ in columns {changed}"
    return Verdict.EQUIVALENT, "same columns, types and values; only the file's bytes differ"


def compare_png(old: bytes, new: bytes) -> tuple[Verdict, str]:
    from matplotlib.image import imread

    before, after = imread(io.BytesIO(old), format="png"), imread(io.BytesIO(new), format="png")
    if before.shape != after.shape:
        return Verdict.DIFFERENT, f"image size {before.shape} -> {after.shape}"
    rms = float(np.sqrt(np.mean((before.astype(np.float64) - after.astype(np.float64)) ** 2)) * 255)
    verdict = Verdict.EQUIVALENT if rms <= IMAGE_TOLERANCE else Verdict.DIFFERENT
    return verdict, f"pixels differ by RMS {rms:.2f} of 255 (tolerance {IMAGE_TOLERANCE:g})"


# -- models ------------------------------------------------------------------------------------------


def _prediction_difference(old: np.ndarray, new: np.ndarray) -> float:
    return float(np.max(relative_differences(old, new), initial=0.0))


def _judge_predictions(old: np.ndarray, new: np.ndarray, check: ModelCheck) -> tuple[Verdict, str]:
    if old.shape != new.shape:
        return Verdict.DIFFERENT, f"prediction shape {old.shape} -> {new.shape}"
    rows = len(check.features)
    return _judge(_prediction_difference(old, new), check.tolerance, f"predictions on {rows:,} test rows")


def _skops_predictions(raw: bytes, features: Any) -> np.ndarray:
    from mlcd.modeling.model_io import load_model

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.skops"
        path.write_bytes(raw)
        model = load_model(path)
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(features), dtype=np.float64)
    return np.asarray(model.predict(features), dtype=np.float64)


def compare_skops(old: bytes, new: bytes, check: ModelCheck) -> tuple[Verdict, str]:
    before = _skops_predictions(old, check.features)
    return _judge_predictions(before, _skops_predictions(new, check.features), check)


def _onnx_predictions(raw: bytes, check: ModelCheck) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    outputs = session.run(None, check.onnx_feeds(check.features, [i.name for i in session.get_inputs()]))
    # Classifiers give (labels, probabilities); regressors one column of predictions.
    return np.asarray(outputs[-1], dtype=np.float64).reshape(len(outputs[-1]), -1)


def compare_onnx(old: bytes, new: bytes, check: ModelCheck) -> tuple[Verdict, str]:
    return _judge_predictions(_onnx_predictions(old, check), _onnx_predictions(new, check), check)


# -- files -------------------------------------------------------------------------------------------


def compare_bytes(path: str, old: bytes, new: bytes, model: ModelCheck | None) -> tuple[Verdict, str]:
    """Judge one file by its kind; bytes that are equal are identical whatever the kind."""
    if old == new:
        return Verdict.IDENTICAL, "same bytes"
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return compare_json(old, new)
    if suffix == ".parquet":
        return compare_parquet(old, new)
    if suffix == ".png":
        return compare_png(old, new)
    if suffix in (".skops", ".onnx"):
        if model is None:
            return Verdict.UNVERIFIED, "no test split to compare the models' predictions on"
        return compare_skops(old, new, model) if suffix == ".skops" else compare_onnx(old, new, model)
    return Verdict.DIFFERENT, "bytes differ, and mlcd has no content comparison for this kind of file"


def committed_files(fs: Any, output: str) -> dict[str, Callable[[], bytes]] | None:
    """{path: reader} of an output as HEAD committed it (a file, or every file of a directory)."""
    try:
        if fs.isdir(output):
            return {name: functools.partial(fs.read_bytes, name) for name in sorted(fs.find(output))}
        if fs.isfile(output):
            return {output: lambda: fs.read_bytes(output)}
    except NOT_IN_ANY_STORE:
        return None
    return None


def workspace_files(root: Path, output: str) -> dict[str, Path]:
    target = root / output
    if target.is_dir():
        return {p.relative_to(root).as_posix(): p for p in sorted(target.rglob("*")) if p.is_file()}
    return {output: target} if target.is_file() else {}


def compare_output(
    stage: str, output: str, root: Path, committed_fs: Any, model: ModelCheck | None
) -> list[Comparison]:
    """One Comparison per file of `output` that is not byte-identical to HEAD's."""
    before = committed_files(committed_fs, output)
    after = workspace_files(root, output)
    if before is None:
        return [
            Comparison(
                stage,
                output,
                Verdict.UNVERIFIED,
                "its committed copy is in no DVC cache or remote here, so it cannot be compared "
                "(set DVC_REMOTE_URL to the remote CI pushes to)",
            )
        ]
    found = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after or path not in before:
            change = "no longer written" if path not in after else "new, not in the commit"
            found.append(Comparison(stage, path, Verdict.DIFFERENT, change))
            continue
        try:
            old = before[path]()
        except NOT_IN_ANY_STORE:
            found.append(Comparison(stage, path, Verdict.UNVERIFIED, "its committed copy cannot be read"))
            continue
        verdict, detail = compare_bytes(path, old, after[path].read_bytes(), model)
        if verdict is not Verdict.IDENTICAL:
            found.append(Comparison(stage, path, verdict, detail))
    return found


def overall(comparisons: list[Comparison]) -> Verdict:
    """The worst verdict among the outputs that could be compared."""
    compared = [c.verdict for c in comparisons if c.verdict is not Verdict.UNVERIFIED]
    return max(compared, default=Verdict.IDENTICAL)
