"""Labelled rows appended as a new DVC version of the source (what `mlcd retrain` does to the data),
in a real git + DVC repo: a CSV keeps its bytes and grows, labels go back to the values they were
made from, a built-in table becomes a file, and a refusal writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlcd.cli import app
from mlcd.config import ProjectPaths, load_params
from mlcd.data.append import append_rows
from mlcd.data.schema import load_schema
from mlcd.data.sources import breast_cancer_frame
from mlcd.errors import MonitorError

runner = CliRunner()


def _md5(dvc_file):
    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


def test_a_csv_grows_in_place_and_labels_become_the_values_they_were_made_from(dvc_project, tmp_path):
    # A 0/1 target stored as float (as statsmodels' and many CSV exports have it): classes "0" and "1".
    table = pd.DataFrame({"age": [30.0, 41.0, 52.0, 63.0] * 10, "party": ["a", "b", None, "a"] * 10})
    table["vote"] = [1.0 if i % 3 else 0.0 for i in range(len(table))]
    table["id"] = range(len(table))  # a column the schema will not name (dropped by the user)
    table.to_csv(tmp_path / "votes.csv", index=False)
    assert runner.invoke(app, ["data", "use", str(tmp_path / "votes.csv"), "--target", "vote"]).exit_code == 0
    paths = ProjectPaths(dvc_project)
    params = load_params(paths.params)
    schema = load_schema(paths.schema(params.data))
    source = paths.source(params.data)
    before, before_md5 = source.read_bytes(), _md5(source.with_name("votes.csv.dvc"))
    rows = pd.DataFrame({"age": [70.0, 71.0], "party": ["b", None], "id": [0, 0], "vote": ["1", "0"]})

    appended = append_rows(rows, schema, params, paths)

    assert (appended.rows_before, appended.rows_added, appended.switched) == (40, 2, False)
    assert source.read_bytes().startswith(before)  # the existing rows' bytes are untouched
    grown = pd.read_csv(source)
    assert grown["vote"].tolist()[-2:] == [1.0, 0.0] and grown["vote"].dtype == float
    assert grown["party"].isna().tolist()[-2:] == [False, True]
    assert _md5(source.with_name("votes.csv.dvc")) != before_md5


def test_a_built_in_table_becomes_a_tracked_file_and_params_point_at_it(dvc_project):
    paths = ProjectPaths(dvc_project)
    params = load_params(paths.params)
    schema = load_schema(paths.schema(params.data))
    rows = breast_cancer_frame().head(3)
    rows["mean_radius"] += 0.5

    appended = append_rows(rows, schema, params, paths)

    assert appended.switched and appended.source == "data/external/breast_cancer.parquet"
    assert load_params(paths.params).data.source == appended.source
    written = pd.read_parquet(dvc_project / appended.source)
    assert len(written) == 569 + 3 and written["diagnosis"].tolist()[-3:] == rows["diagnosis"].tolist()
    assert (dvc_project / "data" / "external" / "breast_cancer.parquet.dvc").is_file()


def test_a_label_the_data_never_had_is_refused_and_nothing_is_written(dvc_project):
    paths = ProjectPaths(dvc_project)
    params = load_params(paths.params)
    schema = load_schema(paths.schema(params.data))
    rows = breast_cancer_frame().head(2)
    rows["diagnosis"] = ["benign", "unsure"]
    before = {p: p.read_bytes() for p in dvc_project.rglob("*") if p.is_file() and ".dvc/" not in str(p)}
    with pytest.raises(MonitorError, match=r"labels \['unsure'\] are not classes of 'diagnosis'"):
        append_rows(rows, schema, params, paths)
    after = {p: p.read_bytes() for p in dvc_project.rglob("*") if p.is_file() and ".dvc/" not in str(p)}
    assert after == before
