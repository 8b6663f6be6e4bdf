"""train.search: the space as written in params.yaml, scikit-learn's searches, and where they run.

In this process (no cluster): what the search picks and writes, and every way to write a bad
space. The same search on a Dask cluster, with the lock unchanged, and an unreachable scheduler
through dvc and the CLI, are tests/e2e/test_cluster.py.
"""

from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError

from mlcd.cluster import SCHEDULER_ENV, engine
from mlcd.config import ProjectPaths, TrainParams, ValueRange, load_params
from mlcd.data.model_input import read_split
from mlcd.data.schema import load_schema
from mlcd.errors import ClusterError, ConfigError
from mlcd.files import read_json
from mlcd.modeling.search import default_scoring, run_search
from mlcd.modeling.train import build_pipeline, run_train


def _train(**search) -> TrainParams:
    return TrainParams(estimator="logistic_regression", search={"kind": "grid", **search})


def test_a_range_includes_both_ends_and_keeps_whole_numbers_whole():
    assert ValueRange(range=(1, 5, 2)).values() == [1, 3, 5]
    assert ValueRange(range=(0.1, 0.3, 0.1)).values() == [0.1, 0.2, 0.3]
    with pytest.raises(ValidationError, match="stop >= start"):
        ValueRange(range=(5, 1, 1))


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"space": {}}, "search.space has no values for 'logistic_regression'"),
        (
            {"space": {"logistic_regression": {"C": {"log_uniform": [0.01, 10]}}}},
            "a grid needs values to try",
        ),
        ({"kind": "random", "space": {"logistic_regression": {"C": {"log_uniform": [10, 1]}}}}, "high > low"),
    ],
)
def test_a_space_that_cannot_be_searched_is_refused_when_params_are_read(search, message):
    with pytest.raises(ValidationError, match=message):
        _train(**search)


def test_the_default_scorer_is_the_gates_first_metric_for_the_task():
    assert default_scoring("classification", 2) == "roc_auc"
    assert default_scoring("classification", 3) == "f1_macro"
    assert default_scoring("regression", 0) == "r2"


@pytest.fixture
def split(built_project):
    paths = ProjectPaths(built_project)
    params = load_params(paths.params)
    schema = load_schema(paths.schema(params.data)).for_model()
    x, y = read_split(paths.train_data, schema)
    return schema, x, y


def test_an_unknown_parameter_or_scorer_names_what_is_searchable(split):
    schema, x, y = split
    params = _train(space={"logistic_regression": {"strength": [1.0]}})
    with (
        engine() as here,
        pytest.raises(ConfigError, match=r"strength is not a parameter of .* searchable: C, "),
    ):
        run_search(build_pipeline(schema, params), x, y, params, here)
    params = _train(scoring="roc-auc", space={"logistic_regression": {"C": [1.0]}})
    with engine() as here, pytest.raises(ConfigError, match="'roc-auc' is not a scikit-learn scorer"):
        run_search(build_pipeline(schema, params), x, y, params, here)


def test_the_best_candidate_is_set_on_the_pipeline_and_every_candidate_is_reported(split):
    schema, x, y = split
    params = _train(cv_folds=3, space={"logistic_regression": {"C": [0.001, 1.0], "max_iter": [200, 500]}})
    pipeline = build_pipeline(schema, params)
    with engine() as here:
        found = run_search(pipeline, x, y, params, here)
    assert here.address is None and found["candidates"] == 4 and found["scoring"] == "roc_auc"
    ranks = sorted(row["rank"] for row in found["results"])
    assert ranks[0] == 1 and len(found["results"]) == 4
    best = next(row for row in found["results"] if row["rank"] == 1)
    assert found["best"] == best["params"] and found["best_score"] == best["mean_score"]
    assert found["best"]["C"] == 1.0, "C=0.001 underfits the breast-cancer data"
    assert pipeline.get_params()["model__C"] == found["best"]["C"]
    assert all("time" not in key for row in found["results"] for key in row), "timings differ run to run"


def test_train_writes_the_search_as_a_metric_and_plot_points(built_project, tmp_path):
    shutil.copytree(built_project, tmp_path / "project")
    paths = ProjectPaths(tmp_path / "project")
    params = load_params(paths.params)
    random = params.train.model_copy(
        update={
            "cv_folds": 0,
            "search": params.train.search.model_copy(update={"kind": "random", "n_iter": 3, "cv_folds": 2}),
        }
    )
    run_train(params.data, random, paths)
    written = read_json(paths.search_metrics)
    assert written["kind"] == "random" and written["candidates"] == 3 and len(written["results"]) == 3
    points = read_json(paths.search_candidates)
    assert {p["parameter"] for p in points} == {"C"} and len(points) == 3
    run_train(params.data, params.train, paths)  # search off: the outputs DVC tracks still exist
    assert read_json(paths.search_metrics) == {"kind": "none"} and read_json(paths.search_candidates) == []


@pytest.mark.parametrize("value", ["local:0", "local:two", "local:1000"])
def test_a_bad_local_worker_count_is_refused(monkeypatch, value):
    monkeypatch.setenv(SCHEDULER_ENV, value)
    with pytest.raises(ClusterError, match="write local:N"), engine():
        pass
