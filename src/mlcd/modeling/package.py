"""Package: the serving bundle. ONNX model, input schema, examples and a manifest.

The ONNX export must reproduce the scikit-learn model on the whole test set:
identical labels and probabilities within PARITY_TOLERANCE, or packaging fails.
The serving side reads only this bundle, never the training code.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from pydantic import BaseModel
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType

from mlcd.bundle import (
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    EXAMPLES_FILE,
    MANIFEST,
    MATRIX_INPUT,
    MODEL_FILE,
    REFERENCE_FILE,
    SCHEMA_FILE,
    BundleSchema,
    DataSummary,
    Examples,
    Manifest,
    Parity,
)
from mlcd.config import Params, ProjectPaths
from mlcd.console import stage, working
from mlcd.data.model_input import read_column, read_split, split_partitions
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.data.split import MISSING_CATEGORY
from mlcd.data.tables import parquet_partitions
from mlcd.datetimes import part_name
from mlcd.errors import BundleError, ModelError, ParityError
from mlcd.files import atomic_dir, dump_json, human_size, read_json, sha256_file
from mlcd.modeling.features import single_matrix
from mlcd.modeling.model_io import load_model
from mlcd.modeling.reference import reference_profile
from mlcd.serve.model import BundleModel
from mlcd.serve.selfcheck import self_check

# Largest allowed |ONNX - scikit-learn| on a probability (classifiers) or on a
# prediction relative to the target's scale (regressors, parity_scale). ONNX runs in
# float32, scikit-learn in float64; these bounds are ~100x what we measure.
PARITY_TOLERANCE = {
    "logistic_regression": 1e-4,
    "random_forest": 1e-5,
    "hist_gradient_boosting": 1e-4,
    "ridge": 1e-4,
    "xgboost": 1e-5,  # XGBoost sums float32 leaves, as ONNX does: 1.2e-7 measured
}


def parity_tolerance(params: Params) -> float:
    """How far ONNX may be from scikit-learn here; CI's equivalence check allows the same for float noise."""
    return params.package.parity_tolerance or PARITY_TOLERANCE[params.train.estimator]


_VERSIONED = ("mlcd", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "pandas", "skops")
# What else an estimator's model and its export ran on.
_VERSIONED_FOR = {"xgboost": ("xgboost-cpu", "onnxmltools")}


def onnx_inputs(schema: DatasetSchema) -> list[tuple[str, Any]]:
    """One float [n, k] matrix for all-numeric data; otherwise one [n, 1] input per feature."""
    if single_matrix(schema):
        return [(MATRIX_INPUT, FloatTensorType([None, len(schema.features)]))]
    return [
        (
            f.name,
            StringTensorType([None, 1]) if f.dtype == "category" else FloatTensorType([None, 1]),
        )
        for f in schema.features
    ]


def onnx_feeds(frame: pd.DataFrame, schema: DatasetSchema, input_names: list[str]) -> dict[str, np.ndarray]:
    """Inputs for the exported model; `input_names` are its own (skl2onnx sanitises column names)."""
    if single_matrix(schema):
        return {MATRIX_INPUT: frame[schema.feature_names].to_numpy(dtype=np.float32)}
    feeds = {}
    for spec, input_name in zip(schema.features, input_names, strict=True):
        column = frame[spec.name].to_numpy()
        dtype = object if spec.dtype == "category" else np.float32
        feeds[input_name] = column.astype(dtype).reshape(-1, 1)
    return feeds


def parity_scale(target_std: float) -> float:
    """A regression target's scale: its standard deviation in training (1 for a constant target).

    A prediction near zero of a target in the thousands is still judged against thousands:
    a float32 model is exact to about 1e-7 of the numbers it adds up, not of its answer.
    """
    return target_std if target_std > 0 and math.isfinite(target_std) else 1.0


def input_names(session: ort.InferenceSession) -> list[str]:
    return [entry.name for entry in session.get_inputs()]


def to_onnx(model: Any, schema: DatasetSchema, opset: int) -> bytes:
    target_opset: int | dict[str, int] = opset
    if _is_xgboost(model.steps[-1][1]):
        from mlcd.modeling.xgboost_models import ML_OPSET, register_onnx_converters

        register_onnx_converters()
        target_opset = {"": opset, "ai.onnx.ml": ML_OPSET}
    options = {id(model.steps[-1][1]): {"zipmap": False}} if schema.task == "classification" else None
    try:
        proto = convert_sklearn(
            model,
            initial_types=onnx_inputs(schema),
            options=options,
            target_opset=target_opset,
            name="mlcd",  # a fixed graph name keeps the bytes stable
        )
    except Exception as exc:  # skl2onnx raises many types; all mean "cannot export this"
        raise ModelError(f"cannot convert the model to ONNX: {exc}") from exc
    return canonical_onnx(proto)


def _is_xgboost(estimator: Any) -> bool:
    """Without importing XGBoost: the other estimators' packaging never loads it."""
    return type(estimator).__module__.startswith(("xgboost.", "mlcd.modeling.xgboost_models"))


def canonical_onnx(proto: Any) -> bytes:
    """Serialise with opset imports sorted: skl2onnx lists them in an order that varies by process."""
    imports = sorted(proto.opset_import, key=lambda entry: (entry.domain, entry.version))
    del proto.opset_import[:]
    proto.opset_import.extend(imports)
    return bytes(proto.SerializeToString())


def onnx_session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def check_parity(
    model: Any,
    session: ort.InferenceSession,
    parts: Iterable[pd.DataFrame],
    schema: DatasetSchema,
    tolerance: float,
    target_scale: float = 1.0,
) -> Parity:
    """Labels equal and probabilities within `tolerance`; a regressor's predictions within `tolerance`
    of the larger of `target_scale` (parity_scale) and the prediction's own size. Over the test
    features in `parts` (one frame, or data.partition_rows rows at a time).
    """
    rows = mismatched = 0
    worst = 0.0
    for x in parts:
        outputs = session.run(None, onnx_feeds(x, schema, input_names(session)))
        if schema.task == "regression":
            expected = model.predict(x)
            got = outputs[0].reshape(-1)
            scale = np.maximum(target_scale, np.abs(expected))
            worst = max(worst, float(np.max(np.abs(got - expected) / scale, initial=0)))
        else:
            labels, proba = outputs
            expected_labels = model.predict(x).astype(str)
            mismatched += int(np.sum(labels.astype(str) != expected_labels))
            worst = max(worst, float(np.max(np.abs(proba - model.predict_proba(x)), initial=0)))
        rows += len(x)
    report = Parity(
        rows=rows,
        label_mismatches=mismatched,
        max_abs_diff=worst,
        tolerance=tolerance,
        target_scale=target_scale if schema.task == "regression" else None,
    )
    if mismatched or worst > tolerance:
        raise ParityError(
            f"the ONNX model disagrees with the scikit-learn model on the test set: "
            f"{mismatched} different labels, largest difference {worst:.3g} "
            f"(tolerance {tolerance:g}); "
            "the bundle was not written. Try another estimator or onnx opset (package.onnx_opset), "
            "or raise package.parity_tolerance if the difference is acceptable"
        )
    return report


def bundle_schema(
    schema: DatasetSchema,
    stats: TrainingStats,
    model: Any,
    session: ort.InferenceSession,
) -> BundleSchema:
    """What the server needs to know: features as the API takes them, the model's inputs, class order.

    `schema` is the dataset's (a datetime feature is one API field); the session is the model's,
    where it is several float inputs (FeatureSpec.parts). Every statistic kept (observed ranges, known
    categories, class shares) comes from the training split: the test split stays unseen.
    """
    model_schema = schema.for_model()
    columns = not single_matrix(model_schema)
    onnx_name = dict(zip(model_schema.feature_names, input_names(session), strict=columns))
    features = []
    for spec in schema.features:
        entry: dict[str, Any] = spec.model_dump(mode="json")
        if spec.dtype == "datetime":
            entry["parts"] = list(spec.parts)
            if columns:
                entry["onnx_names"] = [onnx_name[part_name(spec.name, part)] for part in spec.parts]
            features.append(entry)
            continue
        if spec.dtype != "category":
            entry["observed_min"], entry["observed_max"] = stats.ranges[spec.name]
        else:
            entry["categories"] = stats.categories[spec.name]
        if columns and onnx_name[spec.name] != spec.name:
            entry["onnx_name"] = onnx_name[spec.name]
        features.append(entry)
    body: dict[str, Any] = {
        "task": schema.task,
        "features": features,
        "target": schema.target.model_dump(mode="json"),
        "positive_class": schema.positive_class,
        "class_balance": stats.class_shares,
        "onnx_input": "columns" if columns else "matrix",
        "outputs": ["label", "probabilities"] if schema.task == "classification" else ["variable"],
    }
    if schema.task == "classification":
        # The label of each probability column, in the order the model returns them.
        body["classes"] = [str(c) for c in model.classes_]
    if schema.categorical:
        body["missing_category"] = MISSING_CATEGORY
    return BundleSchema.model_validate(body)


@dataclass(frozen=True)
class TrainingStats:
    """What the bundle keeps about the data: from the training split only, so the test split stays unseen."""

    ranges: dict[str, tuple[float, float]]  # numeric model inputs: observed (min, max)
    categories: dict[str, list[str]]  # text features: every level, missing excluded
    class_shares: dict[str, float] | None  # classification: each class's share of the rows
    target_std: float  # regression: the target's scale (parity_scale); 0 otherwise


def training_stats(path: Path, schema: DatasetSchema) -> TrainingStats:
    """Read column by column with Arrow, so memory stays near one column of the split."""
    import pyarrow.compute as pc

    ranges, categories = {}, {}
    for name in schema.numeric:
        low_high = pc.min_max(read_column(path, name)).as_py()
        ranges[name] = (float(low_high["min"]), float(low_high["max"]))
    for name in schema.categorical:
        levels = pc.unique(read_column(path, name)).to_pylist()
        categories[name] = sorted({str(v) for v in levels if v is not None} - {MISSING_CATEGORY})
    target = read_column(path, schema.target.name)
    shares, std = None, 0.0
    if schema.task == "classification":
        counts = {str(e["values"]): int(e["counts"]) for e in pc.value_counts(target).to_pylist()}
        total = sum(counts.values())
        shares = {label: round(counts[label] / total, 6) for label in sorted(counts)}
    else:
        std = float(pc.stddev(pc.cast(target, "float64")).as_py() or 0.0)
    return TrainingStats(ranges, categories, shares, std)


def _as_sent(value: Any) -> Any:
    """A test-set value as a client sends it: gaps as null (JSON has no NaN), dates as ISO-8601."""
    if value is None or isinstance(value, str):
        return None if value == MISSING_CATEGORY else value
    if isinstance(value, datetime):
        return value.isoformat()
    number = float(value)
    return None if math.isnan(number) else number


def example_records(paths: ProjectPaths, schema: DatasetSchema, n: int) -> list[dict[str, Any]]:
    """The first `n` test rows as the API takes them (the dataset's columns, not the model's), read
    without the rest of the split."""
    _, first = next(parquet_partitions(paths.test_data, max(n, 1), schema.feature_names))
    table = first.slice(0, n)
    return [{k: _as_sent(v) for k, v in row.items()} for row in table.to_pylist()]


def examples(
    session: ort.InferenceSession, x: pd.DataFrame, schema: DatasetSchema, records: list[dict[str, Any]]
) -> Examples:
    """Records with the answers this exact ONNX model gives, for smoke tests of a deployment."""
    sample = x.head(len(records))
    outputs = session.run(None, onnx_feeds(sample, schema, input_names(session)))
    if schema.task == "regression":
        return Examples(records=records, predictions=[float(v) for v in outputs[0].reshape(-1)])
    labels, proba = outputs
    return Examples(
        records=records,
        labels=[str(v) for v in labels],
        probabilities=[[float(p) for p in row] for row in proba],
    )


def refuse_unservable(bundle: Path) -> None:
    """Run the server's start-up check on the bundle about to be written."""
    try:
        self_check(BundleModel(bundle))
    except BundleError as exc:
        raise ModelError(f"the bundle would not serve, so it was not written: {exc}") from None


def library_versions(estimator: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in (*_VERSIONED, *_VERSIONED_FOR.get(estimator, ())):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _json(part: BaseModel) -> bytes:
    """A bundle file's bytes: unset optional fields left out, so the files say only what is known."""
    return dump_json(part.model_dump(mode="json", exclude_none=True)).encode()


def run_package(params: Params, paths: ProjectPaths) -> Manifest:
    with stage("package") as log:
        dataset_schema = load_schema(paths.schema(params.data))
        schema = dataset_schema.for_model()
        model = load_model(paths.model)
        stats = training_stats(paths.train_data, schema)
        tolerance = parity_tolerance(params)
        partition_rows = params.data.partition_rows
        with working("exporting to ONNX and checking parity on the test split"):
            model_bytes = to_onnx(model, schema, params.package.onnx_opset)
            session = onnx_session(model_bytes)
            # The model was fit on float32 features; ONNX computes in float32: compare on those.
            parts = (
                split_partitions(paths.test_data, schema, partition_rows)
                if partition_rows
                else [read_split(paths.test_data, schema, float32=True)]
            )
            scale = parity_scale(stats.target_std)
            parity = check_parity(model, session, (x for x, _ in parts), schema, tolerance, scale)
        records = example_records(paths, dataset_schema, params.package.examples)
        first_rows, _ = next(split_partitions(paths.test_data, schema, max(len(records), 1)))
        profile = read_json(paths.data_profile)
        folds = params.monitor.calibration_folds if schema.positive_class is not None else 0
        with working(
            "profiling the training split" + (f" and calibrating on {folds} folds" if folds else "")
        ):
            reference = reference_profile(
                paths.train_data, dataset_schema, model, params.monitor, partition_rows
            )
        contents = {
            MODEL_FILE: model_bytes,
            SCHEMA_FILE: _json(bundle_schema(dataset_schema, stats, model, session)),
            EXAMPLES_FILE: _json(examples(session, first_rows, schema, records)),
            # Data rather than something to read: one line, half the bytes of an indented file.
            REFERENCE_FILE: reference.model_dump_json(exclude_none=True).encode(),
        }
        with atomic_dir(paths.bundle) as tmp:
            for name, payload in contents.items():
                (tmp / name).write_bytes(payload)
            manifest = Manifest(
                format=BUNDLE_FORMAT,
                artifact="model",
                model_hash=sha256_file(tmp / MODEL_FILE),
                files={name: sha256_file(tmp / name) for name in BUNDLE_FILES},
                task=schema.task,
                estimator=params.train.estimator,
                data=DataSummary(
                    sha256=profile.get("sha256"), rows=profile.get("rows"), test_rows=parity.rows
                ),
                params=params.as_dict(),
                metrics=read_json(paths.metrics),
                parity=parity,
                versions=library_versions(params.train.estimator),
            )
            (tmp / MANIFEST).write_bytes(_json(manifest))
            refuse_unservable(tmp)
        log.add(f"parity on {parity.rows:,} rows: max diff {parity.max_abs_diff:.2g} <= {tolerance:g}")
        log.add(f"model {manifest.model_hash[:12]} ({human_size(len(model_bytes))}) -> {paths.bundle}/")
        return manifest
