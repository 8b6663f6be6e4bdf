"""`mlcd predict`: a table scored batch by batch gives /predict's answers, or names the rows it refuses."""

from __future__ import annotations

import pandas as pd
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from mlcd.cli import app
from mlcd.cluster import SCHEDULER_ENV, loopback_cluster
from mlcd.errors import DataValidationError, SourceError
from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.batch import predict_table
from mlcd.serve.model import BundleModel
from mlcd.serve.scoring import LABEL_COLUMN, PROBABILITY_PREFIX
from mlcd.serve.server import load

from ..helpers import a_worker_killed_when_busy

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def served(built_project):
    bundle = built_project / "models" / "bundle"
    settings = ServeSettings(bundle=bundle, max_batch=10_000)
    with TestClient(create_app(load(settings), settings)) as client:
        yield bundle, client


@pytest.fixture(scope="module")
def table(built_project) -> pd.DataFrame:
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet")
    return frame.assign(patient=[f"p{i}" for i in range(len(frame))])  # a key column, not a feature


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_batches_answer_as_predict_with_the_keys_beside(served, table, tmp_path, suffix):
    bundle, client = served
    source = tmp_path / f"in{suffix}"
    table.to_parquet(source) if suffix == ".parquet" else table.to_csv(source, index=False)
    target = tmp_path / f"out{suffix}"
    scored = predict_table(source, target, bundle, batch_rows=7)  # 17 batches, the last one short
    assert scored.rows == len(table) and scored.keys == ["diagnosis", "patient"]
    out = pd.read_parquet(target) if suffix == ".parquet" else pd.read_csv(target)
    assert list(out["patient"]) == list(table["patient"])
    features = table.drop(columns=["diagnosis", "patient"])
    answer = client.post("/predict", content=features.to_json(orient="records"), headers=JSON).json()
    assert list(out[LABEL_COLUMN]) == answer["labels"]
    for name in ("benign", "malignant"):
        expected = [row[name] for row in answer["probabilities"]]
        assert out[f"{PROBABILITY_PREFIX}{name}"].tolist() == pytest.approx(expected, abs=1e-6)


def test_a_row_predict_refuses_is_named_and_nothing_is_written(served, table, tmp_path):
    bundle, _ = served
    bad = table.copy()
    bad.loc[10, "mean_radius"] = -1.0
    source = tmp_path / "in.parquet"
    bad.to_parquet(source)
    target = tmp_path / "out.parquet"
    target.write_bytes(b"yesterday's scores")
    with pytest.raises(DataValidationError) as raised:
        predict_table(source, target, bundle, batch_rows=4)
    assert "row 11, column 'mean_radius': must be >= 0" in str(raised.value)
    assert target.read_bytes() == b"yesterday's scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"], "a temp file stayed"


def test_missing_features_and_odd_files_are_one_line_each(served, table, tmp_path):
    bundle, _ = served
    source = tmp_path / "in.parquet"
    table.drop(columns=["mean_radius"]).to_parquet(source)
    with pytest.raises(DataValidationError, match="lacks the model's feature columns: mean_radius"):
        predict_table(source, tmp_path / "out.parquet", bundle)
    with pytest.raises(SourceError, match="use a file ending in"):
        predict_table(source, tmp_path / "out.xlsx", bundle)
    clashing = tmp_path / "clash.parquet"
    table.assign(predicted_label="x").to_parquet(clashing)
    with pytest.raises(DataValidationError, match="already has columns named like the predictions"):
        predict_table(clashing, tmp_path / "out.parquet", bundle)


def test_the_command_scores_a_folder(served, table, tmp_path):
    bundle, _ = served
    folder = tmp_path / "parts"
    folder.mkdir()
    table.iloc[:50].to_parquet(folder / "a.parquet")
    table.iloc[50:].to_parquet(folder / "b.parquet")
    result = CliRunner().invoke(
        app, ["predict", str(folder), str(tmp_path / "out.csv"), "--bundle", str(bundle)]
    )
    assert result.exit_code == 0, result.output
    assert f"scored {len(table)} rows" in " ".join(result.output.split())
    assert len(pd.read_csv(tmp_path / "out.csv")) == len(table)


@pytest.fixture(scope="module")
def dask_address():
    with loopback_cluster(2) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
def test_on_a_dask_cluster_the_answers_are_the_same_and_a_refusal_names_its_row(
    served, table, tmp_path, dask_address, monkeypatch
):
    """Two worker processes score: a Parquet input's row groups they read themselves (a task each),
    a CSV's batches the driver reads and sends; the driver writes the answers in order."""
    bundle, _ = served
    source, csv = tmp_path / "in.parquet", tmp_path / "in.csv"
    table.to_parquet(source, row_group_size=25)  # 5 row groups: 5 tasks, read where they run
    table.to_csv(csv, index=False)
    predict_table(source, tmp_path / "here.parquet", bundle, batch_rows=9)
    monkeypatch.setenv(SCHEDULER_ENV, dask_address)
    for given in (source, csv):
        scored = predict_table(given, tmp_path / "there.parquet", bundle, batch_rows=9)
        assert scored.rows == len(table)
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "there.parquet"), pd.read_parquet(tmp_path / "here.parquet")
        )

    bad = table.copy()
    bad.loc[100, "mean_radius"] = -1.0  # in the fifth row group, well after the first ones were sent
    bad.to_parquet(source, row_group_size=25)
    with pytest.raises(DataValidationError) as raised:
        predict_table(source, tmp_path / "refused.parquet", bundle, batch_rows=9)
    assert "row 101, column 'mean_radius': must be >= 0" in str(raised.value)
    assert not list(tmp_path.glob("*refused*")), "a partial output or a temp file stayed"


@pytest.mark.slow
def test_a_worker_killed_mid_scoring_has_its_batches_run_again(served, table, tmp_path, monkeypatch):
    """kill -9 of a worker process while row groups are in flight: Dask runs its tasks again on the
    other worker (a task names the rows it reads; the bundle was sent to both), so the output is
    whole and the same as here."""
    bundle, _ = served
    source = tmp_path / "in.parquet"
    tall = pd.concat([table] * 20, ignore_index=True)  # about 11,000 rows in 57 row groups of 200
    tall.to_parquet(source, row_group_size=200)
    predict_table(source, tmp_path / "here.parquet", bundle, batch_rows=20)
    with loopback_cluster(2) as cluster, a_worker_killed_when_busy(cluster) as killed:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        predict_table(source, tmp_path / "there.parquet", bundle, batch_rows=20)
    assert killed.is_set(), "no worker was ever busy: the test proved nothing"
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "there.parquet"), pd.read_parquet(tmp_path / "here.parquet")
    )


def test_columns_read_at_once_answer_exactly_as_records_and_odd_ones_go_record_by_record(
    served, table, tmp_path, monkeypatch
):
    """The column-wise path (serve/scoring.number_columns) against /predict's record-by-record reading
    of the same file: integer and float32 columns give the same bytes; a boolean, a gap and an integer
    beyond float64's exact ones are left to the record path, which names them as /predict does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcd.serve import scoring

    bundle, _ = served
    mixed = table.assign(
        mean_radius=table["mean_radius"].round().astype("int64"),
        mean_texture=table["mean_texture"].astype("float32"),
    )
    source = tmp_path / "mixed.parquet"
    mixed.to_parquet(source)
    read_at_once = []
    reader = scoring.number_columns

    def watched(*args):
        read_at_once.append(reader(*args))
        return read_at_once[-1]

    monkeypatch.setattr(scoring, "number_columns", watched)
    predict_table(source, tmp_path / "columns.parquet", bundle, batch_rows=50)
    assert all(numbers is not None for numbers in read_at_once) and len(read_at_once) == 3
    monkeypatch.setattr(scoring, "number_columns", lambda *a: None)
    predict_table(source, tmp_path / "records.parquet", bundle, batch_rows=50)
    assert pq.read_table(tmp_path / "columns.parquet").equals(pq.read_table(tmp_path / "records.parquet"))
    monkeypatch.setattr(scoring, "number_columns", reader)

    def with_radius(column: pa.Array) -> pa.Table:
        frame = pa.Table.from_pandas(table, preserve_index=False)
        return frame.set_column(frame.schema.get_field_index("mean_radius"), "mean_radius", column)

    refused = {
        "boolean": (
            pa.array([True] * len(table)),
            "row 1, column 'mean_radius': expected a number, got a boolean",
        ),
        "gap": (
            pa.array([1.0, None] + [1.0] * (len(table) - 2)),
            "row 2, column 'mean_radius': may not be null",
        ),
    }
    for name, (column, said) in refused.items():
        pq.write_table(with_radius(column), tmp_path / f"{name}.parquet")
        with pytest.raises(DataValidationError) as raised:
            predict_table(tmp_path / f"{name}.parquet", tmp_path / "out.parquet", bundle)
        assert said in str(raised.value), (name, str(raised.value))
    # 2**53 + 1 has no float64: read as /predict reads the JSON integer, straight to float32.
    huge = with_radius(pa.array([2**53 + 1] * len(table), pa.int64()))
    model = BundleModel(bundle)
    features = [f.name for f in model.features]
    assert scoring.number_columns(model.layout, features, huge.to_batches()[0]) is None
    pq.write_table(huge, tmp_path / "huge.parquet")
    assert predict_table(tmp_path / "huge.parquet", tmp_path / "out.parquet", bundle).rows == len(table)
