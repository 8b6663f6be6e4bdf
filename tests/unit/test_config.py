import re
import shutil
from pathlib import Path

import pytest
import yaml

from mlcd.config import Params, ProjectPaths, load_params, parse_params
from mlcd.errors import ConfigError

from ..helpers import PROJECT_ROOT


def problems_for(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    return caught.value.problems


def test_committed_params_file_is_valid():
    params = load_params(PROJECT_ROOT / "params.yaml")
    assert params.train.estimator == "logistic_regression"
    assert params.data.source == "sklearn:breast_cancer"


def test_empty_file_means_all_defaults():
    assert parse_params(None) == Params()


def test_unknown_key_is_named_with_the_allowed_keys():
    [problem] = problems_for({"train": {"estimater": "random_forest"}})
    assert problem.startswith("train.estimater: unknown key")
    assert "estimator" in problem and "cv_folds" in problem


def test_unknown_top_level_section_lists_sections():
    [problem] = problems_for({"serve": {}})
    assert "serve: unknown key" in problem
    assert "data, preprocess, train, evaluate, package" in problem


def test_wrong_type_names_key_and_value():
    [problem] = problems_for({"preprocess": {"test_size": "a fifth"}})
    assert problem.startswith("preprocess.test_size:")
    assert "'a fifth'" in problem


def test_out_of_range_value_names_the_bound():
    [problem] = problems_for({"preprocess": {"test_size": 1.5}})
    assert problem.startswith("preprocess.test_size:")
    assert "less than 1" in problem


def test_one_calibration_fold_is_refused_naming_what_works():
    [problem] = problems_for({"monitor": {"calibration_folds": 1}})
    assert problem.startswith("monitor:") and "0 (no estimate) or 2 or more" in problem


def test_unknown_estimator_lists_allowed_values():
    [problem] = problems_for({"train": {"estimator": "lightgbm"}})
    assert problem.startswith("train.estimator:")
    for allowed in ("logistic_regression", "random_forest", "hist_gradient_boosting", "ridge", "xgboost"):
        assert allowed in problem


def test_estimator_must_fit_task():
    [problem] = problems_for({"train": {"estimator": "ridge"}})
    assert "'ridge' does not fit task 'classification'" in problem


def test_unknown_source_lists_allowed_forms():
    [problem] = problems_for({"data": {"source": "http://example.org/data"}})
    assert problem.startswith("data.source:")
    assert "'synthetic'" in problem and ".csv" in problem and "s3://" in problem and "ending in /" in problem


def test_a_source_may_be_a_folder_or_an_s3_prefix_with_a_bucket():
    assert parse_params({"data": {"source": "data/external/events/"}}).data.source == "data/external/events/"
    assert parse_params({"data": {"source": "s3://bucket/events/"}}).data.source == "s3://bucket/events/"
    [problem] = problems_for({"data": {"source": "s3:///events/"}})
    assert "names no bucket" in problem
    [problem] = problems_for({"data": {"source": "elsewhere/events/"}})
    assert "not under data/external/" in problem


def test_every_problem_is_reported_at_once():
    problems = problems_for({"data": {"rows": -5}, "train": {"cv_folds": "many"}, "extra": 1})
    assert len(problems) == 3


def test_missing_file_says_where_to_run(tmp_path: Path):
    with pytest.raises(ConfigError, match="run mlcd from the project root"):
        load_params(tmp_path / "params.yaml")


def test_invalid_yaml_is_a_config_error(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def _dvc_yaml() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())


def _declared_paths(stage: dict) -> set[str]:
    found = set()
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind, []):
            found.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return found


def test_dvc_yaml_outputs_match_config_paths():
    paths = ProjectPaths(Path())
    expected = {
        "ingest": {paths.raw_data},
        "validate": {paths.data_profile},
        "preprocess": {paths.train_data, paths.test_data},
        "train": {paths.model, paths.train_metrics, paths.search_metrics, paths.search_candidates},
        "evaluate": {paths.metrics, paths.per_class_metrics, paths.plots, paths.figures},
        "package": {paths.bundle},
    }
    stages = _dvc_yaml()["stages"]
    assert list(stages) == list(expected)
    for name, outputs in expected.items():
        assert _declared_paths(stages[name]) == {p.as_posix() for p in outputs}, name


def test_every_stage_depends_on_its_own_module_and_real_params():
    stages = _dvc_yaml()["stages"]
    defaults = Params().as_dict()
    for name, stage in stages.items():
        # The stage runs the src/ of the directory DVC runs it in (dvc exp --temp, queue workers).
        assert stage["cmd"] == f"PYTHONPATH=src python -m mlcd {name}"
        assert any(str(dep).startswith("src/mlcd/") for dep in stage["deps"]), name
        for key in stage.get("params", []):
            node = defaults
            for part in key.split("."):
                assert part in node, f"{name} lists unknown param {key}"
                node = node[part]


def test_artifact_names_the_bundle():
    artifacts = _dvc_yaml()["artifacts"]
    assert artifacts["model"]["path"] == ProjectPaths(Path()).bundle.as_posix()
    assert artifacts["model"]["type"] == "model"


STAGE_MODULES = {
    "ingest": "mlcd.data.sources",
    "validate": "mlcd.data.validation_partitions",
    "preprocess": "mlcd.data.partitions",
    "train": "mlcd.modeling.train",
    "evaluate": "mlcd.modeling.evaluate",
    "package": "mlcd.modeling.package",
}
# Plumbing every stage shares: paths, console, errors, atomic writes. Changing them changes no output.
SHARED = {"mlcd", "mlcd.config", "mlcd.console", "mlcd.errors", "mlcd.files", "mlcd.data", "mlcd.modeling"}


def _imported_mlcd_modules(module: str) -> set[str]:
    """Every mlcd module `module` imports, directly or not (function-level imports included)."""
    import ast

    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = PROJECT_ROOT / "src" / Path(*name.split("."))
        source = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlcd"):
                todo.append(node.module)
                todo += [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if (PROJECT_ROOT / "src" / Path(*node.module.split(".")) / f"{a.name}.py").exists()
                ]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("mlcd")]
    return seen - SHARED


def test_every_stage_depends_on_the_code_that_computes_its_outputs():
    """A change to any module a stage runs must re-run it: missing deps make `dvc repro` skip it."""
    stages = _dvc_yaml()["stages"]
    for name, module in STAGE_MODULES.items():
        needed = {f"src/{m.replace('.', '/')}.py" for m in _imported_mlcd_modules(module)}
        declared = {str(dep) for dep in stages[name]["deps"]}
        assert needed <= declared, f"stage {name} is missing deps: {sorted(needed - declared)}"


# `mlcd params` refuses what `dvc repro` refuses (README "Reliability").


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty: `git checkout HEAD -- "),
        ("   \n# only a comment\n", "is empty"),
        ("train:\n  seed: 1\n  seed: 2\n", "key 'seed' is given twice (line 3)"),
        ("train: {}\ntrain: {}\n", "key 'train' is given twice"),
    ],
    ids=["empty", "blank", "duplicate-key", "duplicate-section"],
)
def test_params_dvc_would_refuse_are_refused(tmp_path: Path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_params(path)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused(value, tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text(f"train:\n  logistic_regression:\n    C: {value}\ngate:\n  max_drop:\n    f1: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    problems = caught.value.problems
    assert any(p.startswith("train.logistic_regression.C: Input should be a finite number") for p in problems)
    assert any(p.startswith("gate.max_drop.f1: Input should be a finite number") for p in problems)


def test_mlcd_params_names_a_key_a_stage_lists_but_params_yaml_lacks(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from mlcd.cli import app

    shutil.copy(PROJECT_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    del params["data"]["rows"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["params"])
    assert result.exit_code == 2
    assert "data.rows: listed by stage 'ingest' in dvc.yaml, missing from params.yaml" in result.output
    params["data"]["rows"] = 100
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert CliRunner().invoke(app, ["params"]).exit_code == 0


def test_the_estimator_list_is_one_list():
    """EstimatorName is the list; what is said per estimator elsewhere must name exactly those."""
    from typing import get_args

    from mlcd.config import ESTIMATORS, EstimatorName, TrainParams
    from mlcd.modeling.package import PARITY_TOLERANCE

    names = set(get_args(EstimatorName))
    assert {name for fitting in ESTIMATORS.values() for name in fitting} == names
    assert set(PARITY_TOLERANCE) == names
    assert names <= set(TrainParams.model_fields), "every estimator has its params section"
