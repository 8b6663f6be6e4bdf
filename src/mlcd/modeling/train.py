"""Train: the scikit-learn pipeline named in params, optional k-fold CV, saved with skops."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from mlcd.config import DataParams, ProjectPaths, TrainParams
from mlcd.console import StageLog, progress, stage, working
from mlcd.data.model_input import read_split
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.errors import ConfigError
from mlcd.files import human_size, write_json
from mlcd.modeling.features import build_preprocessor
from mlcd.modeling.model_io import save_model

LINEAR = frozenset({"logistic_regression", "ridge"})
DENSE = frozenset({"hist_gradient_boosting", "xgboost"})
# Estimators given missing values as they are (features.build_preprocessor's `impute`).
NATIVE_MISSING = frozenset({"xgboost"})
# Estimators that train on a split read partition by partition (data.partition_rows); the others read
# it whole (README "Data beyond memory").
STREAMED = frozenset({"xgboost"})
TRAIN_STAGE = "train"  # the dvc.yaml stage that runs run_train


def depends_on_cluster_shape(data: DataParams, params: TrainParams) -> bool:
    """Whether this process's train fits XGBoost across Dask workers (streamed XGBoost with
    MLCD_DASK_SCHEDULER set), whose model depends on how the rows fall across the cluster's workers."""
    from mlcd.cluster import requested

    return bool(data.partition_rows) and params.estimator in STREAMED and requested() is not None


def cv_scoring(task: str, n_classes: int) -> tuple[str, ...]:
    if task == "regression":
        return ("neg_root_mean_squared_error", "r2")
    return ("accuracy", "f1_macro", "roc_auc" if n_classes == 2 else "roc_auc_ovr")


def build_estimator(params: TrainParams) -> BaseEstimator:
    regression = params.task == "regression"
    if params.estimator == "logistic_regression":
        lr = params.logistic_regression
        # scikit-learn >= 1.8 expresses the penalty through l1_ratio and C.
        l1_ratio = {"l2": 0.0, "l1": 1.0, "elasticnet": lr.l1_ratio, "none": 0.0}[lr.penalty]
        return LogisticRegression(
            C=np.inf if lr.penalty == "none" else lr.C,
            l1_ratio=l1_ratio,
            solver="lbfgs" if l1_ratio == 0.0 else "saga",
            max_iter=lr.max_iter,
            random_state=params.seed,
            class_weight=params.class_weight,
        )
    if params.estimator == "random_forest":
        # ~1 s of imports only tree models pay
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        rf = params.random_forest
        forest: dict[str, Any] = {
            "n_estimators": rf.n_estimators,
            "max_depth": rf.max_depth,
            "min_samples_leaf": rf.min_samples_leaf,
            "random_state": params.seed,
            "n_jobs": 1,  # parallel trees are not bit-reproducible across core counts
        }
        if regression:
            return RandomForestRegressor(**forest)
        return RandomForestClassifier(**forest, class_weight=params.class_weight)
    if params.estimator == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        hgb = params.hist_gradient_boosting
        boosting: dict[str, Any] = {
            "max_iter": hgb.max_iter,
            "learning_rate": hgb.learning_rate,
            "max_leaf_nodes": hgb.max_leaf_nodes,
            "early_stopping": False,  # its hidden validation split would change with data size
            "random_state": params.seed,
        }
        if regression:
            return HistGradientBoostingRegressor(**boosting)
        return HistGradientBoostingClassifier(**boosting, class_weight=params.class_weight)
    if params.estimator == "xgboost":
        from mlcd.modeling.xgboost_models import build_xgboost

        return build_xgboost(params)
    return Ridge(alpha=params.ridge.alpha)


def build_pipeline(schema: DatasetSchema, params: TrainParams) -> Pipeline:
    return Pipeline(
        [
            (
                "features",
                build_preprocessor(
                    schema,
                    scale=params.estimator in LINEAR,
                    # XGBoost would read a sparse matrix's absent entries as missing, not as zeros.
                    dense=params.estimator in DENSE,
                    impute=params.estimator not in NATIVE_MISSING,
                ),
            ),
            ("model", build_estimator(params)),
        ]
    )


def thresholds_as_float32(pipeline: Pipeline) -> None:
    """Round each histogram-boosting split threshold down to the float32 at or below it.

    The model reads float32 features (read_split), so no input lies between the two: its answers do
    not change. But ONNX stores thresholds as float32, and one rounded up to an input's value sends
    that input the other way (a prediction 0.07 off on vega's cars). Rounded here, both agree.
    """
    model = pipeline.steps[-1][1]
    if not hasattr(model, "_predictors"):
        return  # not histogram gradient boosting
    for trees in model._predictors:  # private, fenced by tests/data/test_real_targets.py
        for tree in trees:
            thresholds = tree.nodes["num_threshold"]
            rounded = thresholds.astype(np.float32)
            above = rounded.astype(np.float64) > thresholds
            rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
            tree.nodes["num_threshold"] = rounded.astype(np.float64)


def cross_validation(pipeline: Pipeline, x: Any, y: Any, params: TrainParams) -> dict[str, Any]:
    splitter_type = StratifiedKFold if params.task == "classification" else KFold
    splitter = splitter_type(n_splits=params.cv_folds, shuffle=True, random_state=params.seed)
    scoring = cv_scoring(params.task, int(np.unique(y).size))
    scores: dict[str, list[float]] = {}
    with progress() as bar:
        task = bar.add_task(f"{params.cv_folds}-fold CV", total=params.cv_folds)
        for fold in splitter.split(x, y):
            result = cross_validate(pipeline, x, y, cv=[fold], scoring=scoring)
            for key, value in result.items():
                if key.startswith("test_"):
                    scores.setdefault(key.removeprefix("test_"), []).append(float(value[0]))
            bar.advance(task)
    return {
        "folds": params.cv_folds,
        **{
            name: {"mean": round(float(np.mean(v)), 6), "std": round(float(np.std(v)), 6)}
            for name, v in scores.items()
        },
    }


def write_search(searched: dict[str, Any], paths: ProjectPaths) -> None:
    """metrics/search.json (a DVC metric: the winner and its score) and search_candidates.json
    (a DVC plot: score against each searched value); written when no search ran too, as DVC outputs."""
    from mlcd.modeling.search import candidate_points

    write_json(paths.search_metrics, searched)
    write_json(paths.search_candidates, candidate_points(searched))


def run_train(data: DataParams, params: TrainParams, paths: ProjectPaths) -> dict[str, Any]:
    with stage(TRAIN_STAGE) as log:
        schema = load_schema(paths.schema(data)).for_model()
        if schema.task != params.task:
            raise ConfigError(
                f"train.task is {params.task!r} but the schema {paths.schema(data)} describes a "
                f"{schema.task} target; change train.task or data.schema"
            )
        pipeline = build_pipeline(schema, params)
        searched: dict[str, Any] = {"kind": "none"}
        if data.partition_rows and params.estimator in STREAMED:
            pipeline, train_rows = _fit_streamed(pipeline, schema, data, params, paths, log)
            summary: dict[str, Any] = {"estimator": params.estimator, "train_rows": train_rows}
        else:
            x, y = read_split(paths.train_data, schema)
            train_rows = len(x)
            summary = {"estimator": params.estimator, "train_rows": train_rows}
            searched = _search_and_cross_validate(pipeline, x, y, params, summary, log)
            with working(f"fitting {params.estimator} on {train_rows:,} rows"):
                pipeline.fit(x, y)
                thresholds_as_float32(pipeline)
        save_model(pipeline, paths.model)
        write_json(paths.train_metrics, summary)
        write_search(searched, paths)
        log.add(f"{params.estimator} on {train_rows:,} rows x {len(schema.feature_names)} features")
        log.add(f"-> {paths.model} ({human_size(paths.model.stat().st_size)})")
        return summary


def _search_and_cross_validate(
    pipeline: Pipeline, x: Any, y: Any, params: TrainParams, summary: dict[str, Any], log: StageLog
) -> dict[str, Any]:
    """train.search, then train.cv_folds, on the split in memory; the search's record."""
    searched: dict[str, Any] = {"kind": "none"}
    if params.search.kind != "none":
        from mlcd.cluster import engine
        from mlcd.modeling.search import run_search

        with engine() as where:
            searched = run_search(pipeline, x, y, params, where)
        summary["search"] = {"best": searched["best"], "best_score": searched["best_score"]}
        scored = f"{searched['scoring']} {searched['best_score']}"
        log.add(f"{searched['kind']} search on {where.describe()}: best {searched['best']} ({scored})")
    if params.cv_folds:
        summary["cv"] = cross_validation(pipeline, x, y, params)
        log.add(f"CV {params.cv_folds} folds")
    return searched


def _fit_streamed(
    pipeline: Pipeline,
    schema: DatasetSchema,
    data: DataParams,
    params: TrainParams,
    paths: ProjectPaths,
    log: StageLog,
) -> tuple[Pipeline, int]:
    """XGBoost on the training split read data.partition_rows rows at a time: by its external-memory
    iterator here, or across the workers of the cluster MLCD_DASK_SCHEDULER names."""
    from mlcd.cluster import engine

    rows = data.partition_rows or 0
    if not depends_on_cluster_shape(data, params):
        from mlcd.modeling.xgboost_partitions import fit_xgboost_in_partitions

        with working(f"fitting {params.estimator} on {paths.train_data}, {rows:,} rows at a time"):
            return fit_xgboost_in_partitions(pipeline, schema, params, paths.train_data, rows)
    from mlcd.modeling.xgboost_dask import fit_xgboost_on_dask

    with engine() as where, working(f"fitting xgboost on {where.describe()}, {rows:,} rows a task"):
        fitted = fit_xgboost_on_dask(pipeline, schema, params, paths.train_data, rows, where.client)
    log.add(
        f"XGBoost across the workers of {where.describe()}: equivalent to, not identical with, another fit"
    )
    return fitted
