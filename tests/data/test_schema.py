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


def test_any_column_name_is_a_feature_name_but_blank_is_not():
    names = ["sepal length (cm)", "od280/od315_of_diluted_wines", "1st colour", "ünïcode"]
    schema = DatasetSchema.model_validate({"target": {"name": "y"}, "features": [{"name": n} for n in names]})
    assert schema.feature_names == names
    with pytest.raises(ValueError, match="may not be empty or blank"):
        DatasetSchema.model_validate({"target": {"name": "y"}, "features": [{"name": " "}]})


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
    assert "target.kind: unknown key; allowed keys here: name, classes, positive, drop_missing" in problems
    assert (
        "features.0.colour: unknown key; allowed keys here: name, dtype, min, max, nullable, time_of_day"
        in problems
    )


def test_the_minority_of_a_binary_target_is_the_positive_class():
    frame = pd.DataFrame({"amount": range(100), "label": ["ok"] * 97 + ["fraud"] * 3})
    assert infer_schema(frame, "label").target.positive == "fraud"  # alphabetically first, yet positive
    tie = pd.DataFrame({"x": range(4), "y": ["a", "b", "a", "b"]})
    assert infer_schema(tie, "y").positive_class == "b"
    three = pd.DataFrame({"x": range(6), "y": ["a", "b", "c"] * 2})
    assert infer_schema(three, "y").target.positive is None


def test_schema_infer_says_which_class_is_positive(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mlcd.cli import app

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "fraud.csv"
    pd.DataFrame({"amount": range(50), "label": ["ok"] * 45 + ["fraud"] * 5}).to_csv(data, index=False)
    result = CliRunner().invoke(app, ["schema", "infer", str(data), "--target", "label", "--out", "s.yaml"])
    assert result.exit_code == 0, result.output
    assert "positive class 'fraud': the less frequent of the two" in result.output
    assert load_schema(tmp_path / "s.yaml").target.positive == "fraud"


def test_column_names_that_make_no_schema_are_one_error_listing_each(tmp_path):
    frame = pd.DataFrame({" ": [1, 2], "\t": [3, 4], "y": ["a", "b"]})
    with pytest.raises(ConfigError, match="do not make a valid schema") as caught:
        infer_schema(frame, "y")
    assert len(caught.value.problems) == 2
