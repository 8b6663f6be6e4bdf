import pandas as pd
import pytest

from mlcd.data.schema import DatasetSchema, infer_schema, load_schema, schema_to_yaml
from mlcd.errors import ConfigError


def test_infer_round_trips_through_yaml(tmp_path):
    frame = pd.DataFrame(
        {
            "age": [31, 45, 52],
            "income": [1.5, -2.0, 3.0],
            "city": ["a", "b", None],
            "churn": ["y", "n", "y"],
        }
    )
    schema = infer_schema(frame, "churn")
    assert schema.task == "classification"
    assert schema.target.classes == ["n", "y"]
    assert [(f.name, f.dtype, f.min, f.nullable) for f in schema.features] == [
        ("age", "int", 0.0, False),
        ("income", "float", None, False),
        ("city", "category", None, True),
    ]
    path = tmp_path / "schema.yaml"
    path.write_text(schema_to_yaml(schema))
    assert load_schema(path) == schema


def test_many_distinct_float_targets_mean_regression():
    frame = pd.DataFrame({"x": range(50), "y": [i / 7 for i in range(50)]})
    assert infer_schema(frame, "y").task == "regression"


def test_feature_names_must_be_identifiers():
    with pytest.raises(ValueError, match="must be a Python-style identifier"):
        DatasetSchema.model_validate({"target": {"name": "y"}, "features": [{"name": "mean radius"}]})


def test_invalid_schema_file_lists_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("target: {name: y, classes: [a]}\nfeatures: [{name: x, dtype: text}]\n")
    with pytest.raises(ConfigError) as caught:
        load_schema(path)
    assert len(caught.value.problems) == 2
    assert any("features.0.dtype" in p for p in caught.value.problems)


def test_missing_schema_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="mlcd schema infer"):
        load_schema(tmp_path / "none.yaml")


def test_unknown_keys_name_the_keys_allowed_there_even_inside_lists(tmp_path):
    """Schema and params errors are formatted by one function (config.describe_problem)."""
    path = tmp_path / "schema.yaml"
    path.write_text(
        "target: {name: y, kind: categorical}\nfeatures:\n  - {name: a, dtype: float, colour: red}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_schema(path)
    problems = caught.value.problems
    assert "target.kind: unknown key; allowed keys here: name, classes, positive" in problems
    assert "features.0.colour: unknown key; allowed keys here: name, dtype, min, max, nullable" in problems
