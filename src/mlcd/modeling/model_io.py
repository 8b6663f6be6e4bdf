"""Saving and loading the trained pipeline with skops: no pickle anywhere.

skops archives are not byte-stable: entry names and `__id__` fields come from
Python object ids (arrays) or random UUIDs (bytes, such as an XGBoost booster),
and zip entries carry the time of writing. We renumber ids and rename files in
order of appearance and fix timestamps so the same model gives the same bytes
(and so the same hash in dvc.lock) on every run.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

from mlcd.errors import ModelError
from mlcd.files import write_bytes

# Types skops does not trust by default that our own estimators need. Anything
# else in a model file is refused: it was not written by this pipeline.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # train.estimator: xgboost (modeling/xgboost_models.py); XGBoost keeps its trees in a Booster.
        "mlcd.modeling.xgboost_models.LabelledXGBClassifier",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.core.Booster",
    }
)
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    """Ids in order of appearance, and each file the schema names renamed after them: arrays are
    `<id>.npy`, and bytes (an XGBoost booster) a random `<uuid>.bin` that becomes `bytes-<n>.bin`."""

    def new_id(old: int) -> int:
        return ids.setdefault(old, len(ids))

    if isinstance(node, dict):
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                node[key] = new_id(value)
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                node[key] = files[value] = f"{new_id(int(value.removesuffix('.npy')))}.npy"
            elif key == "file" and isinstance(value, str):
                node[key] = files.setdefault(value, f"bytes-{len(files)}{Path(value).suffix}")
            else:
                _renumber(value, ids, files)
    elif isinstance(node, list):
        for item in node:
            _renumber(item, ids, files)


def canonical_skops(raw: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema = json.loads(source.read("schema.json"))
    renamed: dict[str, str] = {}  # file in the archive -> its stable name
    _renumber(schema, {}, renamed)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        entries = {"schema.json": json.dumps(schema, indent=2).encode()}
        for name in source.namelist():
            if name != "schema.json":
                entries[renamed.get(name, name)] = source.read(name)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name])
    return out.getvalue()


def save_model(model: Any, path: Path) -> None:
    write_bytes(path, canonical_skops(sio.dumps(model)))


def load_model(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"{path} not found: run `dvc repro train` (or `dvc pull`) first")
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not a skops model file: {exc}") from None
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ModelError(
            f"{path} contains types mlcd does not trust: {', '.join(refused)}; "
            "retrain with `dvc repro train` or add the type to TRUSTED_TYPES after review"
        )
    return sio.load(path, trusted=sorted(untrusted))
