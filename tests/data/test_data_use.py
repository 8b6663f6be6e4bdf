"""`mlcd data use` in a real git + DVC repo: what it writes, and that a refusal writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlcd.cli import app

runner = CliRunner()


def churn_table(path):
    frame = pd.DataFrame(
        {"monthly fee (€)": [10.0, 20.5, 31.0, 12.0] * 10, "plan/tier": ["a", "b", "c", "a"] * 10}
    )
    frame["churned"] = ["yes" if i % 5 == 0 else "no" for i in range(len(frame))]
    frame.to_csv(path, index=False)
    return path


def snapshot(project):
    return {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".dvc/tmp" not in str(p)}


def test_data_use_tracks_infers_and_points_params_at_it(dvc_project, tmp_path):
    source = churn_table(tmp_path / "churn.csv")
    result = runner.invoke(app, ["data", "use", str(source), "--target", "churned"])
    assert result.exit_code == 0, result.output
    params_text = (dvc_project / "params.yaml").read_text()
    params = yaml.safe_load(params_text)
    assert params["data"]["source"] == "data/external/churn.csv"
    assert params["data"]["schema"] == "data/schemas/churn.yaml"
    assert "data:  # where the data comes from\n" in params_text  # comments kept
    schema = yaml.safe_load((dvc_project / "data" / "schemas" / "churn.yaml").read_text())
    assert schema["target"] == {
        "name": "churned",
        "classes": ["no", "yes"],
        "positive": "yes",
        "drop_missing": False,
    }
    assert [f["name"] for f in schema["features"]] == ["monthly fee (€)", "plan/tier"]
    dvc_file = yaml.safe_load((dvc_project / "data" / "external" / "churn.csv.dvc").read_text())
    assert dvc_file["outs"][0]["path"] == "churn.csv"
    assert "/churn.csv" in (dvc_project / "data" / "external" / ".gitignore").read_text()
    assert "positive class 'yes'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "no such column"], "target column 'no such column' not in the data"),
        (
            ["--target", "churned", "--task", "clustering"],
            "'clustering' is not one of 'classification', 'regression'",
        ),
    ],
)
def test_a_refusal_writes_nothing(dvc_project, tmp_path, args, message):
    source = churn_table(tmp_path / "churn.csv")
    before = snapshot(dvc_project)
    result = runner.invoke(app, ["data", "use", str(source), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.replace("│", " ").split())  # rich wraps its box's lines
    assert snapshot(dvc_project) == before


def test_an_existing_schema_is_not_replaced_without_force(dvc_project, tmp_path):
    source = churn_table(tmp_path / "churn.csv")
    (dvc_project / "data" / "schemas" / "churn.yaml").write_text("# mine\n")
    before = snapshot(dvc_project)
    result = runner.invoke(app, ["data", "use", str(source), "--target", "churned"])
    assert result.exit_code == 2 and "pass --force" in result.output
    assert snapshot(dvc_project) == before
    assert runner.invoke(app, ["data", "use", str(source), "--target", "churned", "--force"]).exit_code == 0


def test_when_dvc_add_fails_the_copied_file_is_taken_back(dvc_project, tmp_path):
    source = churn_table(tmp_path / "churn.csv")
    (dvc_project / ".dvc" / "config").write_text("[core\nbroken")  # DVC cannot read its own config
    before = snapshot(dvc_project)
    result = runner.invoke(app, ["data", "use", str(source), "--target", "churned"])
    assert result.exit_code == 2, result.output
    assert "`dvc add data/external/churn.csv` failed" in result.output
    assert snapshot(dvc_project) == before  # no copy left in data/external/, params and schemas untouched


def test_the_same_table_again_is_not_another_file(dvc_project, tmp_path):
    source = churn_table(tmp_path / "churn.csv")
    assert runner.invoke(app, ["data", "use", str(source), "--target", "churned"]).exit_code == 0
    before = snapshot(dvc_project)
    again = runner.invoke(app, ["data", "use", str(source), "--target", "churned"])
    assert again.exit_code == 0, again.output
    assert "another file" not in again.output and snapshot(dvc_project) == before
    other = tmp_path / "elsewhere" / "churn.csv"
    other.parent.mkdir()
    other.write_text(source.read_text().replace("yes", "ja"))
    refused = runner.invoke(app, ["data", "use", str(other), "--target", "churned"])
    assert refused.exit_code == 2 and "is another file" in refused.output
    assert snapshot(dvc_project) == before


def test_a_tsv_is_read_as_tab_separated(dvc_project, tmp_path):
    source = tmp_path / "churn.tsv"
    pd.read_csv(churn_table(tmp_path / "churn.csv")).to_csv(source, sep="\t", index=False)
    result = runner.invoke(app, ["data", "use", str(source), "--target", "churned"])
    assert result.exit_code == 0, result.output
    params = yaml.safe_load((dvc_project / "params.yaml").read_text())
    assert params["data"]["source"] == "data/external/churn.tsv"
    assert "(40 rows, tracked by DVC)" in result.output and "(2 features)" in result.output


def test_a_delimiter_hint_is_yaml_that_reads_as_a_tab(dvc_project, tmp_path):
    from mlcd.data.sources import read_source_file
    from mlcd.errors import SourceError

    source = tmp_path / "churn.csv"
    pd.read_csv(churn_table(tmp_path / "plain.csv")).to_csv(source, sep="\t", index=False)
    with pytest.raises(SourceError) as refused:
        read_source_file(source)
    hint = str(refused.value).split("set ")[1].removesuffix(" in params.yaml")
    assert yaml.safe_load(hint) == {"data.delimiter": "\t"}
    assert read_source_file(source, delimiter=yaml.safe_load(hint)["data.delimiter"]).shape == (40, 3)


def test_a_table_already_in_data_external_is_named_from_the_project_root(dvc_project):
    """As after `dvc import-url` or a copy by hand: the path given relative to the project root."""
    churn_table(dvc_project / "data" / "external" / "churn.csv")
    result = runner.invoke(app, ["data", "use", "data/external/churn.csv", "--target", "churned"])
    assert result.exit_code == 0, result.output
    assert (
        yaml.safe_load((dvc_project / "params.yaml").read_text())["data"]["source"]
        == "data/external/churn.csv"
    )
