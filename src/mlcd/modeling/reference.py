"""The bundle's reference profile: the training split as the server compares live traffic with it.

Per numeric feature a sample of training values (every one up to monitor.reference_rows) and
its deciles; per text feature the training rows of each level; the model's own answers on the
training rows; and each feature's drift test, Evidently's default for its kind and the
split's size unless params.yaml's monitor.features names another. For a binary classifier also
the calibration that estimates its accuracy before labels arrive (monitor/estimation.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from mlcd.bundle import PREDICTION, Calibration, DriftTest, NumericReference, Reference
from mlcd.config import MonitorParams
from mlcd.data.model_input import read_column, read_split, split_partitions
from mlcd.data.schema import DatasetSchema
from mlcd.data.tables import row_count
from mlcd.errors import ConfigError
from mlcd.monitor.drift import DEFAULT_THRESHOLDS, counts, default_method

# The sample is drawn with a fixed seed: the same split gives the same reference.json.
SAMPLE_SEED = 0
# With data.partition_rows, the calibration's cross-validation refits the model on this many training
# rows (a seeded sample), not on the whole split.
CALIBRATION_SAMPLE_ROWS = 100_000


def reference_profile(
    train_data: Path,
    dataset_schema: DatasetSchema,
    model: Any,
    monitor: MonitorParams,
    partition_rows: int | None = None,
) -> Reference:
    """Numbers and text of `dataset_schema` (datetime features are not profiled). With
    `partition_rows` (data.partition_rows) the split is never whole in memory: the features are read
    a column at a time (the same values, so the same profile), the model answers a partition at a
    time, and the calibration is fitted on a seeded sample of CALIBRATION_SAMPLE_ROWS rows."""
    schema = dataset_schema.for_model()
    whole = None if partition_rows else read_split(train_data, schema, float32=False)  # exact values
    rows = len(whole[0]) if whole else row_count(train_data)
    keep = _seeded_rows(rows, monitor.reference_rows)

    def column(name: str) -> pd.Series:
        # A column alone converts as in the whole frame (split_frame's pandas conversion).
        return whole[0][name] if whole else read_column(train_data, name).to_pandas()

    numeric: dict[str, NumericReference] = {}
    categorical: dict[str, dict[str, int]] = {}
    tests: dict[str, DriftTest] = {}
    for name in dataset_schema.numeric:
        values = column(name).to_numpy(np.float64)
        present = values[~np.isnan(values)]
        sample = values[keep]
        numeric[name] = NumericReference(
            sample=sample[~np.isnan(sample)].tolist(),
            quantiles=np.quantile(present, np.linspace(0, 1, 11)).tolist() if len(present) else [],
        )
        tests[name] = _test(monitor, name, default_method(rows, len(np.unique(present)), categorical=False))
        del values, present
    for name in dataset_schema.categorical:
        categorical[name] = {str(k): v for k, v in counts(column(name).astype(str).to_numpy()).items()}
        tests[name] = _test(monitor, name, default_method(rows, len(categorical[name]), categorical=True))
    if whole:
        model_input = whole[0].astype(dict.fromkeys(schema.numeric, "float32"))  # as the model was fit
        answers, calibration_set = model.predict(model_input), (model_input, whole[1])
        label_counts = counts(answers.astype(str)) if schema.task == "classification" else {}
    else:
        assert partition_rows is not None
        answers, label_counts, calibration_set = _answers_in_partitions(
            train_data, schema, model, rows, partition_rows
        )
    predicted_labels = predicted_values = None
    if schema.task == "classification":
        predicted_labels = {str(k): v for k, v in sorted(label_counts.items())}
        method = default_method(rows, len(predicted_labels), categorical=True)
    else:
        predicted_values = answers.astype(np.float64)[keep].tolist()
        method = default_method(rows, len(np.unique(answers)), categorical=False)
    tests[PREDICTION] = _test(monitor, PREDICTION, method)
    positive = schema.positive_class
    calibration = None
    if positive is not None and monitor.calibration_folds:
        x, y = calibration_set
        calibration = fit_calibration(model, x, y.astype(str), positive, monitor.calibration_folds)
    unknown = sorted(set(monitor.features) - set(tests))
    if unknown:
        raise ConfigError(
            f"monitor.features names {', '.join(unknown)}, which the bundle cannot watch; "
            f"watched: {', '.join(tests)} (datetime features are not)"
        )
    return Reference(
        rows=rows,
        window=monitor.window,
        min_window=monitor.min_window,
        interval_seconds=monitor.interval_seconds,
        drift_share=monitor.drift_share,
        numeric=numeric,
        categorical=categorical,
        tests=tests,
        predicted_labels=predicted_labels,
        predicted_values=predicted_values,
        calibration=calibration,
    )


def _seeded_rows(rows: int, limit: int) -> np.ndarray:
    """At most `limit` of `rows` positions, drawn with SAMPLE_SEED, in order."""
    return np.sort(np.random.default_rng(SAMPLE_SEED).permutation(rows)[:limit])


def _answers_in_partitions(
    train_data: Path, schema: DatasetSchema, model: Any, rows: int, partition_rows: int
) -> tuple[np.ndarray, dict[Any, int], tuple[pd.DataFrame, pd.Series]]:
    """The model's answers on every training row, a partition at a time: a regressor's values (8
    bytes a row), a classifier's labels counted as they come (their text for every row would take
    tens of bytes a row); and the seeded sample of rows the calibration is fitted on (its
    cross-validation refits the model: on every row, the split would be whole in memory)."""
    chosen = _seeded_rows(rows, CALIBRATION_SAMPLE_ROWS)
    values: list[np.ndarray] = []
    labels: Counter[Any] = Counter()
    xs, ys = [], []
    start = 0
    for x, y in split_partitions(train_data, schema, partition_rows):
        answers = model.predict(x)
        if schema.task == "classification":
            labels.update(counts(answers.astype(str)))
        else:
            values.append(answers)
        here = chosen[(chosen >= start) & (chosen < start + len(x))] - start
        xs.append(x.iloc[here])
        ys.append(y.iloc[here])
        start += len(x)
    answered = np.concatenate(values) if values else np.empty(0)
    return answered, dict(labels), (pd.concat(xs), pd.concat(ys))


def fit_calibration(
    model: Any, x: pd.DataFrame, y: pd.Series, positive: str, folds: int
) -> Calibration | None:
    """Isotonic regression of the positive class's truth on its out-of-fold probability: the model
    refit on all folds but one, `folds` times, so no probability comes from a row it was fitted on
    (NannyML fits its calibrator on data the model did not see, for the same reason). None when a
    class has a single training row: no fold could hold it out."""
    folds = min(folds, int(y.value_counts().min()))  # StratifiedKFold needs each class in every fold
    if folds < 2:
        return None
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SAMPLE_SEED)
    probabilities = cross_val_predict(clone(model), x, y, cv=splitter, method="predict_proba")
    classes = [str(c) for c in model.classes_]  # predict_proba's columns, as evaluate reads them
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(probabilities[:, classes.index(positive)], (y == positive).to_numpy(np.float64))
    return Calibration(
        positive=positive,
        folds=folds,
        probabilities=isotonic.X_thresholds_.tolist(),
        rates=isotonic.y_thresholds_.tolist(),
    )


def _test(monitor: MonitorParams, name: str, default: str) -> DriftTest:
    chosen = monitor.features.get(name)
    method = (chosen.method if chosen else None) or default
    threshold = (chosen.threshold if chosen else None) or DEFAULT_THRESHOLDS[method]
    return DriftTest(method=method, threshold=threshold)  # type: ignore[arg-type]
