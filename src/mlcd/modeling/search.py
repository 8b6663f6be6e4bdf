"""Hyperparameter search (train.search): scikit-learn's GridSearchCV or RandomizedSearchCV.

Only the search's fits go to a cluster (cluster.engine: joblib's backend); the chosen values are
then set on the pipeline and fitted here, the same fit as if they were written in params.yaml. So
the model's bytes do not depend on where the search ran, only on which values won, and every
candidate's score is a deterministic function of the data, the folds' seed and its values.
What does depend on the machine (each fit's seconds) is never written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from mlcd.cluster import Engine
from mlcd.config import TASK_MAX_DROP, LogUniform, SearchParams, TrainParams, ValueRange
from mlcd.console import working
from mlcd.errors import ConfigError

# The gate's metric names as scikit-learn scorers (losses are negated: a search maximises).
SCORER_OF_METRIC = {
    "roc_auc": "roc_auc",
    "average_precision": "average_precision",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1": "f1_macro",
    "r2": "r2",
    "mae": "neg_mean_absolute_error",
    "rmse": "neg_root_mean_squared_error",
    "mse": "neg_mean_squared_error",
    "log_loss": "neg_log_loss",
}
MODEL_STEP = "model"


def default_scoring(task: str, n_classes: int) -> str:
    """The gate's first metric for this kind of model (config.TASK_MAX_DROP), as a scorer."""
    kind = "regression" if task == "regression" else "binary" if n_classes == 2 else "multiclass"
    scorer = SCORER_OF_METRIC[next(iter(TASK_MAX_DROP[kind]))]
    return "roc_auc_ovr" if scorer == "roc_auc" and n_classes > 2 else scorer


def search_space(pipeline: Pipeline, params: TrainParams) -> dict[str, Any]:
    """train.search.space for this estimator, as the search's parameter grid or distributions."""
    from scipy.stats import loguniform

    space = params.search.space[params.estimator]
    model = pipeline.named_steps[MODEL_STEP]
    known = model.get_params(deep=False)
    unknown = sorted(set(space) - set(known))
    if unknown:
        raise ConfigError(
            f"train.search.space.{params.estimator}: {', '.join(unknown)} is not a parameter of "
            f"{type(model).__name__}; searchable: {', '.join(sorted(known))}"
        )
    grid: dict[str, Any] = {}
    for name, values in space.items():
        if isinstance(values, ValueRange):
            choices: Any = values.values()
        elif isinstance(values, LogUniform):
            choices = loguniform(*values.log_uniform)
        else:
            choices = list(values)
        grid[f"{MODEL_STEP}__{name}"] = choices
    return grid


def run_search(pipeline: Pipeline, x: Any, y: Any, params: TrainParams, engine: Engine) -> dict[str, Any]:
    """Search, then set the winning values on `pipeline` (unfitted); what the search found."""
    search: SearchParams = params.search
    classes = int(np.unique(y).size) if params.task == "classification" else 0
    scoring = search.scoring or default_scoring(params.task, classes)
    _check_scorer(scoring)
    splitter_type = StratifiedKFold if params.task == "classification" else KFold
    folds = splitter_type(n_splits=search.cv_folds, shuffle=True, random_state=search.seed)
    common: dict[str, Any] = {
        "scoring": scoring,
        "cv": folds,
        "n_jobs": engine.parallel_jobs,
        "refit": False,  # the final fit is train's own, below, in this process
        "error_score": "raise",  # a failing candidate is a bad space, not a score of NaN
    }
    space = search_space(pipeline, params)
    searcher: GridSearchCV | RandomizedSearchCV = (
        GridSearchCV(pipeline, space, **common)
        if search.kind == "grid"
        else RandomizedSearchCV(pipeline, space, n_iter=search.n_iter, random_state=search.seed, **common)
    )
    candidates = _candidate_count(searcher, search)
    with working(
        f"{search.kind} search: {candidates} candidates x {search.cv_folds} folds on {engine.describe()}"
    ):
        searcher.fit(x, y)
    results = searcher.cv_results_
    rows: list[dict[str, Any]] = [
        {
            "params": {k.removeprefix(f"{MODEL_STEP}__"): _plain(v) for k, v in candidate.items()},
            "mean_score": round(float(results["mean_test_score"][i]), 6),
            "std_score": round(float(results["std_test_score"][i]), 6),
            "rank": int(results["rank_test_score"][i]),
        }
        for i, candidate in enumerate(results["params"])
    ]
    best = int(np.argmin(results["rank_test_score"]))  # the first of equals: a tie goes the same way
    best_values = rows[best]["params"]
    pipeline.set_params(**{f"{MODEL_STEP}__{k}": v for k, v in best_values.items()})
    return {
        "kind": search.kind,
        "scoring": scoring,
        "folds": search.cv_folds,
        "candidates": len(rows),
        "best_score": rows[best]["mean_score"],
        "best": best_values,
        "results": rows,
    }


def candidate_points(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The search as DVC plot data: one point per candidate and searched parameter (score against value)."""
    return [
        {"parameter": name, "value": value, "mean_score": row["mean_score"], "rank": row["rank"]}
        for row in summary.get("results", [])
        for name, value in row["params"].items()
    ]


def _candidate_count(searcher: GridSearchCV | RandomizedSearchCV, search: SearchParams) -> int:
    if isinstance(searcher, GridSearchCV):
        from sklearn.model_selection import ParameterGrid

        return len(ParameterGrid(searcher.param_grid))
    return search.n_iter


def _check_scorer(scoring: str) -> None:
    from sklearn.metrics import get_scorer_names

    if scoring not in get_scorer_names():
        raise ConfigError(
            f"train.search.scoring {scoring!r} is not a scikit-learn scorer; e.g. "
            f"{', '.join(sorted(set(SCORER_OF_METRIC.values())))}"
        )


def _plain(value: Any) -> Any:
    """numpy scalars as the JSON and YAML types a user would write."""
    return value.item() if isinstance(value, np.generic) else value
