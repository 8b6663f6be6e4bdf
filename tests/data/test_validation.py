"""Data checks: the bundled data passes its schema, and each kind of bad data is named."""

import numpy as np
import pandas as pd
import pytest

from mlcd.config import DataParams
from mlcd.data.schema import load_schema
from mlcd.data.sources import breast_cancer_frame, diabetes_frame, write_synthetic
from mlcd.data.validation import validate_frame
from mlcd.errors import DataValidationError

from ..helpers import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "data" / "schemas"


@pytest.fixture(scope="module")
def schema():
    return load_schema(SCHEMAS / "breast_cancer.yaml")


@pytest.fixture
def frame():
    return breast_cancer_frame()


def problems(frame, schema, **params) -> list[str]:
    with pytest.raises(DataValidationError) as caught:
        validate_frame(frame, schema, DataParams(**params))
    return caught.value.problems


def test_bundled_data_passes_and_is_profiled(frame, schema):
    profile = validate_frame(frame, schema, DataParams())
    assert profile["rows"] == 569
    assert profile["features"] == 30
    assert profile["missing_cells"] == 0
    assert profile["class_balance"] == {"benign": 0.627417, "malignant": 0.372583}


def test_diabetes_passes_its_regression_schema():
    profile = validate_frame(diabetes_frame(), load_schema(SCHEMAS / "diabetes.yaml"), DataParams())
    assert profile["rows"] == 442
    assert "target_mean" in profile


def test_synthetic_data_has_the_bundled_schema(tmp_path, schema):
    path = tmp_path / "synthetic.parquet"
    write_synthetic(path, rows=3000, seed=7)
    synthetic = pd.read_parquet(path)
    profile = validate_frame(synthetic, schema, DataParams())
    assert profile["rows"] == 3000
    assert 0.55 < profile["class_balance"]["benign"] < 0.70
    write_synthetic(tmp_path / "again.parquet", rows=3000, seed=7)
    assert (tmp_path / "again.parquet").read_bytes() == path.read_bytes()


def test_missing_column(frame, schema):
    assert problems(frame.drop(columns="mean_radius"), schema) == [
        "missing column 'mean_radius' (required by the schema)"
    ]


def test_unexpected_column(frame, schema):
    frame["patient_id"] = range(len(frame))
    [problem] = problems(frame, schema)
    assert problem.startswith("unexpected column 'patient_id'")


def test_wrong_dtype_names_column_and_example(frame, schema):
    frame["mean_area"] = frame["mean_area"].astype("string")
    frame.loc[3, "mean_area"] = "large"
    [problem] = problems(frame, schema)
    assert problem == "column 'mean_area': expected float, got text (e.g. 'large')"


def test_all_nan_column(frame, schema):
    frame["worst_symmetry"] = np.nan
    [problem] = problems(frame, schema)
    assert problem == "column 'worst_symmetry' has no values: all 569 rows are missing"


def test_some_missing_values_in_a_non_nullable_column(frame, schema):
    frame.loc[[4, 10], "mean_texture"] = np.nan
    [problem] = problems(frame, schema)
    assert problem.startswith("column 'mean_texture': 2 missing values (data rows 5, 11)")
    assert "nullable: true" in problem


def test_value_below_min(frame, schema):
    frame.loc[7, "mean_radius"] = -1.5
    [problem] = problems(frame, schema)
    assert problem == "column 'mean_radius': 1 values below min 0 (extreme -1.5, data rows 8)"


def test_infinite_value(frame, schema):
    frame.loc[2, "mean_radius"] = np.inf
    assert "column 'mean_radius': infinite values (data rows 3)" in problems(frame, schema)


def test_single_class_target(frame, schema):
    frame["diagnosis"] = "benign"
    [problem] = problems(frame, schema)
    assert problem.startswith("target 'diagnosis' has only one class ('benign')")


def test_unknown_and_missing_labels(frame, schema):
    frame.loc[0, "diagnosis"] = "unsure"
    frame.loc[1, "diagnosis"] = None
    found = problems(frame, schema)
    assert any(p.startswith("target 'diagnosis': 1 missing values (data rows 2)") for p in found)
    assert any(p.startswith("target 'diagnosis': unknown classes 'unsure'") for p in found)


def test_duplicates_over_the_limit(frame, schema):
    doubled = pd.concat([frame, frame.head(10)], ignore_index=True)
    [problem] = problems(doubled, schema)
    assert problem.startswith("10 duplicate rows (1.73%), more than data.max_duplicate_fraction=0.0")
    assert validate_frame(doubled, schema, DataParams(max_duplicate_fraction=0.05))["duplicate_rows"] == 10


def test_empty_dataset(frame, schema):
    assert problems(frame.head(0), schema) == ["the dataset has no rows"]


def test_every_problem_is_listed_in_one_error(frame, schema):
    frame = frame.drop(columns="mean_radius")
    frame["worst_area"] = np.nan
    frame.loc[5, "mean_texture"] = -3.0
    found = problems(frame, schema)
    assert len(found) == 3
