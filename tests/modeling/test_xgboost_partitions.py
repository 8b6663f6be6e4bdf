"""train.estimator: xgboost with data.partition_rows: the training split streamed through XGBoost's
external-memory iterator, held against the same fit on the split in memory.

On public tables with text classes, text features with gaps, numeric gaps and a regression target
with dates: the bundle passes its ONNX parity check, and the model is equivalent to the in-memory one
(XGBoost merges per-partition quantile sketches, so thresholds may move by a bin; the measured
differences are asserted, not hidden).
"""

from __future__ import annotations

import json

import pytest

from mlcd.config import parse_params
from mlcd.data.tables import row_count
from mlcd.errors import ConfigError
from mlcd.modeling.evaluate import run_evaluate
from mlcd.modeling.train import run_train

from ..data.test_partitions import _project
from ..data.test_real_targets import _sources, penguins, r_dataset, vega_cars
from ..helpers import run_pipeline_in_process

TABLES = {
    "penguins: text classes, text features with gaps": (penguins, "species", {}, {}, "accuracy"),
    "pbc: numeric gaps, a 0/1 target": (
        lambda: r_dataset("pbc"),
        "ascites",
        {"drop_missing": True},
        # 16 bins for features of hundreds of values, so the bins are a sketch's choice.
        {"train": {"class_weight": "balanced", "xgboost": {"max_bin": 16}}},
        "roc_auc",
    ),
    "cars: regression, dates, gaps": (
        vega_cars,
        "Miles_per_Gallon",
        {"drop_missing": True},
        {"data": {"max_duplicate_fraction": 0.01}, "train": {"task": "regression"}},
        "r2",
    ),
}


def _sections(sections: dict, partition_rows: int | None) -> dict:
    data = {**_sources("table"), **sections.get("data", {}), "partition_rows": partition_rows}
    return {"data": data, "train": {"estimator": "xgboost", "cv_folds": 0, **sections.get("train", {})}}


@pytest.mark.parametrize("table", list(TABLES))
def test_xgboost_trained_in_partitions_is_equivalent_to_the_fit_in_memory(table, tmp_path):
    """The same split trained both ways: partitions of 40 rows, then the split whole."""
    load, target, edits, sections, metric = TABLES[table]
    project = _project(tmp_path, load(), target, **edits)
    paths, manifest = run_pipeline_in_process(project, _sections(sections, 40))
    assert manifest.parity is not None and manifest.parity.label_mismatches == 0
    assert manifest.parity.max_abs_diff <= manifest.parity.tolerance
    streamed = json.loads(paths.metrics.read_text())
    trained = json.loads(paths.train_metrics.read_text())
    assert trained["train_rows"] == row_count(paths.train_data)
    assert "cv" not in trained

    params = parse_params(_sections(sections, None))
    run_train(params.data, params.train, paths)
    whole = run_evaluate(params.data, params.evaluate, paths)
    # Measured equal on all three (XGBoost keeps every value of sketches this small); the tolerance
    # is for a merged sketch that moves a threshold by a bin.
    assert streamed[metric] == pytest.approx(whole[metric], abs=0.02), (streamed, whole)


def test_cross_validation_with_partitions_says_what_to_change(tmp_path):
    project = _project(tmp_path, penguins(), "species")
    with pytest.raises(ConfigError, match=r"set train.cv_folds: 0 and train.search.kind: none"):
        run_pipeline_in_process(project, _sections({"train": {"cv_folds": 5}}, 40))
