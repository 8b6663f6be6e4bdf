"""Bad input through the real CLI: a one-line reason, exit code 2, and no partial output."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from mlcd.data.sources import breast_cancer_frame

from ..helpers import Repo, new_repo, run

pytestmark = pytest.mark.e2e


def set_source(project: Path, source: str, **data: object) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"].update(source=source, **data)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def outputs(project: Path) -> list[str]:
    """Every file a stage could have written, temporary ones included."""
    found = []
    for folder in ("data/raw", "data/processed", "metrics", "models"):
        if (project / folder).exists():
            found += [
                str(p.relative_to(project))
                for p in (project / folder).rglob("*")
                if p.is_file() and p.name != ".gitignore"
            ]
    return sorted(found)


def ingest_and_validate(project: Path) -> str:
    """Run both stages as dvc would; return stderr of the one that failed."""
    for stage in ("ingest", "validate"):
        done = run(["mlcd", stage], project, check=False)
        if done.returncode:
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr
            return done.stderr
    raise AssertionError("expected a failure")


def write_csv(project: Path, frame) -> str:
    path = project / "data" / "external" / "source.csv"
    frame.to_csv(path, index=False)
    return "data/external/source.csv"


def test_missing_column(project):
    set_source(project, write_csv(project, breast_cancer_frame().drop(columns="mean_radius")))
    message = ingest_and_validate(project)
    assert "the dataset breaks its schema (1 problem):" in message
    assert "missing column 'mean_radius' (required by the schema)" in message
    assert outputs(project) == ["data/raw/dataset.parquet"]


def test_wrong_dtype(project):
    frame = breast_cancer_frame().astype({"mean_area": object})
    frame.loc[3, "mean_area"] = "large"
    set_source(project, write_csv(project, frame))
    message = ingest_and_validate(project)
    assert "column 'mean_area': expected float, got text (e.g. 'large')" in message
    assert outputs(project) == ["data/raw/dataset.parquet"]


def test_all_nan_column(project):
    frame = breast_cancer_frame()
    frame["worst_symmetry"] = np.nan
    set_source(project, write_csv(project, frame))
    message = ingest_and_validate(project)
    assert "column 'worst_symmetry' has no values: all 569 rows are missing" in message
    assert outputs(project) == ["data/raw/dataset.parquet"]


def test_single_class_target(project):
    frame = breast_cancer_frame()
    set_source(project, write_csv(project, frame[frame.diagnosis == "benign"]))
    message = ingest_and_validate(project)
    assert "target 'diagnosis' has only one class ('benign')" in message
    assert outputs(project) == ["data/raw/dataset.parquet"]


def test_empty_file(project):
    (project / "data" / "external" / "empty.csv").write_bytes(b"")
    set_source(project, "data/external/empty.csv")
    message = ingest_and_validate(project)
    assert "data.source 'data/external/empty.csv' is empty (0 bytes)" in message
    assert outputs(project) == []


def test_header_only_file(project):
    write_csv(project, breast_cancer_frame().head(0))
    set_source(project, "data/external/source.csv")
    assert "the dataset has no rows" in ingest_and_validate(project)


def test_nonexistent_source_path(project):
    set_source(project, "data/external/nowhere.parquet")
    message = ingest_and_validate(project)
    assert "data.source 'data/external/nowhere.parquet' does not exist" in message
    assert outputs(project) == []


def test_unknown_and_ill_typed_params(project):
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["learning_rate"] = 0.1
    params["preprocess"]["test_size"] = "twenty percent"
    path.write_text(yaml.safe_dump(params))
    done = run(["mlcd", "ingest"], project, check=False)
    assert done.returncode == 2
    assert "params.yaml is invalid; fix these keys:" in done.stderr
    assert "train.learning_rate: unknown key" in done.stderr
    assert "preprocess.test_size: Input should be a valid number" in done.stderr
    assert outputs(project) == []


def test_dvc_repro_stops_at_validate_and_runs_nothing_after(tmp_path):
    repo: Repo = new_repo(tmp_path / "repo")
    frame = breast_cancer_frame().drop(columns="worst_area")
    frame.to_csv(repo.path / "data" / "external" / "source.csv", index=False)
    set_source(repo.path, "data/external/source.csv")
    done = repo.dvc("repro", check=False)
    assert done.returncode != 0
    assert "missing column 'worst_area'" in done.stderr + done.stdout
    assert not (repo.path / "metrics" / "data.json").exists()
    assert not (repo.path / "data" / "processed" / "train.parquet").exists()
    assert not (repo.path / "models" / "model.skops").exists()
