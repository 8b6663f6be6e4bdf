"""data.partition_rows: ingest, validate and preprocess a table a partition at a time.

Held against the stages that read the table whole, on public tables with gaps, duplicates, IDs,
text labels and a regression target: the same profile, the same problems named at the same rows,
and a split that does not depend on the partition size. Sources: one Parquet file, a folder of
them, and an s3:// prefix on moto's S3 server on loopback.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections import Counter

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from mlcd.config import ProjectPaths, parse_params
from mlcd.data.partitions import run_preprocess
from mlcd.data.sources import run_ingest
from mlcd.data.tables import parquet_files, read_table, row_count, table_digest
from mlcd.data.validation_partitions import run_validate
from mlcd.errors import DataValidationError, SourceError

from ..helpers import new_repo, run_pipeline_in_process
from .test_real_targets import _project as project_with_table
from .test_real_targets import _sources, penguins, r_dataset, vega_cars

# Partition-size-free keys of the profile (the warnings are judged on a sample when partitioned).
SAME = ("rows", "features", "missing_cells", "duplicate_rows", "class_balance", "dropped_missing_target")


def _project(tmp_path, frame: pd.DataFrame, target: str, **schema_edits):
    project = project_with_table(tmp_path, frame, target, "table", **schema_edits)
    # Row groups that line up with none of the partition sizes used here.
    frame.to_parquet(project / "data" / "external" / "table.parquet", index=False, row_group_size=97)
    return project


def _params(partition_rows, **sections):
    data = {**_sources("table"), "partition_rows": partition_rows, **sections.pop("data", {})}
    return parse_params({"data": data, **sections})


def _stages(project, params, *, split=True):
    paths = ProjectPaths(project)
    run_ingest(params.data, paths)
    profile = run_validate(params, paths)
    if split:
        run_preprocess(params.data, params.preprocess, paths)
    return paths, profile


TABLES = {
    "penguins: text classes, gaps": (penguins, "species", {}, {}),
    "pbc: a float 0/1 target with gaps": (lambda: r_dataset("pbc"), "ascites", {"drop_missing": True}, {}),
    "biopsy: duplicates and an ID": (
        lambda: r_dataset("biopsy"),
        "class",
        {},
        {"data": {"max_duplicate_fraction": 0.05}},
    ),
    "cars: regression, dates, gaps": (
        vega_cars,
        "Miles_per_Gallon",
        {"drop_missing": True},
        {"data": {"max_duplicate_fraction": 0.01}, "train": {"task": "regression", "estimator": "ridge"}},
    ),
}


@pytest.mark.parametrize("table", list(TABLES))
def test_the_profile_is_the_same_read_whole_or_in_partitions(table, tmp_path):
    load, target, edits, sections = TABLES[table]
    project = _project(tmp_path, load(), target, **edits)
    _, whole = _stages(project, _params(None, **sections), split=False)
    _, parts = _stages(project, _params(100, **sections), split=False)
    assert {k: whole.get(k) for k in SAME} == {k: parts.get(k) for k in SAME}
    for key in ("target_mean", "target_std"):  # merged from partitions: equal to float rounding
        assert parts.get(key) == pytest.approx(whole.get(key), rel=1e-9)
    assert parts["partition_rows"] == 100


def test_problems_are_named_at_their_rows_and_classes_are_counted_over_every_partition(tmp_path):
    frame = penguins()
    frame = frame.sort_values("species", kind="stable").reset_index(drop=True)  # Gentoo only at the end
    project = _project(tmp_path, frame, "species")
    bad = frame.copy()
    bad.loc[[250, 301], "bill_length_mm"] = -1.0
    bad.loc[[5, 150, 300], "year"] = None  # three partitions with gaps in a column without any
    bad.to_parquet(project / "data" / "external" / "table.parquet", index=False)
    schema = yaml.safe_load((project / "data" / "schemas" / "table.yaml").read_text())
    for feature in schema["features"]:
        if feature["name"] == "bill_length_mm":
            feature["min"] = 0
    (project / "data" / "schemas" / "table.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    with pytest.raises(DataValidationError) as refused:
        _stages(project, _params(100), split=False)
    problems = {p.split(":")[0]: p for p in refused.value.problems}
    bill = problems["column 'bill_length_mm'"]
    assert bill.startswith("column 'bill_length_mm': 1 values below min 0 (extreme -1, data rows 251)")
    assert "1 more partitions have some" in bill  # row 302 is in the next partition
    assert problems["column 'year'"].startswith("column 'year': 1 missing values (data rows 6)")
    assert "2 more partitions have some" in problems["column 'year'"]
    assert not any("class" in p for p in problems), problems  # every species is seen, in any partition


def test_duplicates_in_different_partitions_are_counted(tmp_path):
    frame = penguins().dropna().reset_index(drop=True)
    doubled = pd.concat([frame, frame.iloc[:7]], ignore_index=True)  # copies far from their originals
    project = _project(tmp_path, doubled, "species")
    with pytest.raises(DataValidationError) as refused:
        _stages(project, _params(50), split=False)
    assert any(p.startswith("7 duplicate rows") for p in refused.value.problems)


def test_the_split_is_the_same_whatever_the_partition_size_and_stratified(tmp_path):
    frame = r_dataset("biopsy")
    project = _project(tmp_path, frame, "class")
    sides = {}
    for rows in (100, 256, 5000):
        paths, _ = _stages(project, _params(rows, data={"max_duplicate_fraction": 0.05}))
        sides[rows] = pd.read_parquet(paths.train_data), pd.read_parquet(paths.test_data)
        assert row_count(paths.train_data) + row_count(paths.test_data) == len(frame)
    for rows in (256, 5000):
        for got, expected in zip(sides[rows], sides[100], strict=True):
            pd.testing.assert_frame_equal(got, expected)
    train, test = sides[100]
    assert Counter(train["ID"]) + Counter(test["ID"]) == Counter(frame["ID"])  # every row, once
    for label in ("benign", "malignant"):  # each class split near test_size (binomially, not exactly)
        share = (test["class"] == label).sum() / (frame["class"] == label).sum()
        assert share == pytest.approx(0.2, abs=0.05)
    # Another seed, another split.
    paths, _ = _stages(project, _params(100, data={"max_duplicate_fraction": 0.05}, preprocess={"seed": 7}))
    assert not pd.read_parquet(paths.test_data).equals(test)


def test_partitioned_stages_write_directories_of_parts_that_hold_the_whole_table(tmp_path):
    """The issue's layout: raw data and both splits are directories of Parquet parts of at most
    partition_rows rows, which together hold what the stages read whole write as one file."""
    frame = penguins()
    project = _project(tmp_path, frame, "species")
    paths, _ = _stages(project, _params(None))
    whole = {path: pd.read_parquet(path) for path in (paths.raw_data, paths.train_data, paths.test_data)}
    _stages(project, _params(100))
    assert paths.raw_data.is_dir() and paths.train_data.is_dir() and paths.test_data.is_dir()
    sizes = [pq.read_metadata(f).num_rows for f in parquet_files(paths.raw_data)]
    assert sizes == [100, 100, 100, len(frame) - 300]
    assert [f.name for f in parquet_files(paths.raw_data)][-1] == "part-00003.parquet"
    pd.testing.assert_frame_equal(read_table(paths.raw_data).to_pandas(), whole[paths.raw_data])
    for side in (paths.train_data, paths.test_data):
        parts = parquet_files(side)
        assert all(pq.read_metadata(f).num_rows <= 100 for f in parts)
        assert len({pq.read_schema(f) for f in parts}) == 1  # one schema across the parts
        assert list(read_table(side).schema.names) == list(whole[side].columns)
    split = row_count(paths.train_data) + row_count(paths.test_data)
    assert split == len(whole[paths.train_data]) + len(whole[paths.test_data])  # the same rows kept
    _stages(project, _params(None))  # and back: one file each, no directory or temporary left
    assert all(path.is_file() for path in whole)
    assert not [p.name for p in paths.raw_data.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_raw_table_without_rows_is_one_error_and_the_splits_stay_as_they_were(tmp_path):
    frame = penguins()
    project = _project(tmp_path, frame, "species")
    paths, _ = _stages(project, _params(100))
    before = {side: table_digest(side) for side in (paths.train_data, paths.test_data)}
    shutil.rmtree(paths.raw_data)
    frame.iloc[:0].to_parquet(paths.raw_data, index=False)  # a table with its columns and no rows
    params = _params(100)
    with pytest.raises(SourceError, match=r"dataset\.parquet holds no rows"):
        run_preprocess(params.data, params.preprocess, paths)
    assert {side: table_digest(side) for side in before} == before


def test_group_by_keeps_each_group_on_one_side_across_partitions(tmp_path):
    frame = r_dataset("biopsy")
    project = _project(tmp_path, frame, "class")
    params = _params(64, data={"max_duplicate_fraction": 0.05}, preprocess={"group_by": "ID"})
    paths, _ = _stages(project, params)
    train, test = pd.read_parquet(paths.train_data), pd.read_parquet(paths.test_data)
    assert not set(train["ID"]) & set(test["ID"])
    assert len(test) == pytest.approx(0.2 * len(frame), rel=0.25)


def test_a_folder_of_parquet_files_is_read_in_name_order_and_trains(tmp_path):
    frame = penguins()
    project = _project(tmp_path, frame, "species")
    folder = project / "data" / "external" / "penguins"
    folder.mkdir()
    for index, start in enumerate(range(0, len(frame), 100)):  # names sort as the rows came
        frame.iloc[start : start + 100].to_parquet(folder / f"part-{index:03d}.parquet", index=False)
    (folder / "README.txt").write_text("not data")
    overrides = {"data": {"source": "data/external/penguins/", "schema": "data/schemas/table.yaml"}}
    _, manifest = run_pipeline_in_process(project, {"data": {**overrides["data"], "partition_rows": 60}})
    raw = pd.read_parquet(ProjectPaths(project).raw_data)
    pd.testing.assert_frame_equal(raw, frame)
    assert manifest.metrics  # the rest of the pipeline trains on the partitioned split


def test_a_folder_whose_files_disagree_or_hold_no_parquet_is_one_error(tmp_path):
    frame = penguins()
    project = _project(tmp_path, frame, "species")
    folder = project / "data" / "external" / "parts"
    folder.mkdir()
    with pytest.raises(SourceError, match=r"holds no .parquet files"):
        _stages(project, _params(100, data={"source": "data/external/parts/"}), split=False)
    frame.iloc[:100].to_parquet(folder / "a.parquet", index=False)
    frame.iloc[100:].assign(bill_length_mm="long").to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(SourceError, match=r"cannot read data.source 'data/external/parts/'"):
        _stages(project, _params(100, data={"source": "data/external/parts/"}), split=False)
    assert not ProjectPaths(project).raw_data.exists()  # nothing half-written
    (folder / "b.parquet").write_bytes(b"PAR1" + b"\x00" * 64)  # a truncated upload
    with pytest.raises(SourceError, match=r"cannot read data.source 'data/external/parts/'"):
        _stages(project, _params(100, data={"source": "data/external/parts/"}), split=False)
    assert not ProjectPaths(project).raw_data.exists()


def test_a_csv_source_in_partitions_says_to_convert_it(tmp_path):
    project = _project(tmp_path, penguins(), "species")
    penguins().to_csv(project / "data" / "external" / "table.csv", index=False)
    with pytest.raises(SourceError, match=r"partitioned ingest .* reads Parquet; convert the file"):
        _stages(project, _params(100, data={"source": "data/external/table.csv"}), split=False)


def test_an_s3_prefix_is_read_where_it_lies(s3_endpoint, tmp_path):
    frame = penguins()
    project = _project(tmp_path, frame, "species")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="team-data")
    for index, start in enumerate(range(0, len(frame), 120)):
        body = frame.iloc[start : start + 120].to_parquet(index=False)
        s3.put_object(Bucket="team-data", Key=f"penguins/2026/part-{index}.parquet", Body=body)
    s3.put_object(Bucket="team-data", Key="penguins/_SUCCESS", Body=b"")
    params = _params(50, data={"source": "s3://team-data/penguins/"})
    paths, profile = _stages(project, params)
    assert profile["rows"] == len(frame)
    pd.testing.assert_frame_equal(pd.read_parquet(paths.raw_data), frame)
    with pytest.raises(
        SourceError, match=r"cannot list data.source 's3://team-data/nothing-here/'.*does not exist"
    ):
        _stages(project, _params(50, data={"source": "s3://team-data/nothing-here/"}), split=False)
    with pytest.raises(SourceError, match=r"cannot list data.source 's3://no-such-bucket/x/'"):
        _stages(project, _params(50, data={"source": "s3://no-such-bucket/x/"}), split=False)


@pytest.mark.parametrize("endpoint", ["refuses connections", "accepts and never answers"])
def test_an_s3_endpoint_that_is_down_is_one_error_in_bounded_time(endpoint, tmp_path, monkeypatch):
    project = _project(tmp_path, penguins(), "species")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if endpoint == "accepts and never answers":
            silent.listen(8)  # the kernel completes the handshakes; nobody reads or writes
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"  # bound, not listening: refused
        for name, value in {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        started = time.monotonic()
        with pytest.raises(SourceError, match=rf"cannot list data.source .*check that {url} answers"):
            _stages(project, _params(50, data={"source": "s3://team-data/penguins/"}), split=False)
    # Measured: at once when refused; about 10 s silent (the AWS SDK's timeouts and retries).
    assert time.monotonic() - started < 60
    assert not ProjectPaths(project).raw_data.exists()  # nothing half-written


@pytest.mark.e2e
def test_dvc_records_an_s3_prefix_and_a_change_there_re_runs_the_pipeline(s3_endpoint, tmp_path):
    """The README's way: the prefix is an external dependency of ingest in dvc.yaml, so DVC records
    its version (an md5 of its objects) in dvc.lock without downloading it, ingest reads the objects
    where they lie, and a change there makes `dvc status` and `dvc repro` run ingest again."""
    frame = penguins()
    repo = new_repo(tmp_path / "repo")
    frame.to_parquet(repo.path / "data" / "external" / "penguins.parquet", index=False)
    repo.mlcd("data", "use", "data/external/penguins.parquet", "--target", "species")  # schema, params
    repo.dvc("remove", "--outs", "data/external/penguins.parquet.dvc")  # the table now lives on S3
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="team-data")

    def publish(table: pd.DataFrame) -> None:
        for index, start in enumerate(range(0, len(table), 120)):
            body = table.iloc[start : start + 120].to_parquet(index=False)
            s3.put_object(Bucket="team-data", Key=f"penguins/part-{index}.parquet", Body=body)

    publish(frame)
    repo.set_params(**{"data.source": "s3://team-data/penguins/", "data.partition_rows": 100})
    pipeline = yaml.safe_load((repo.path / "dvc.yaml").read_text())
    pipeline["stages"]["ingest"]["deps"].append("s3://team-data/penguins/")
    (repo.path / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    repo.dvc("repro", "validate")  # the stages that read the source (in_process tests train on it)
    repo.commit("penguins from S3, 100 rows at a time")
    recorded = [d for d in repo.lock()["stages"]["ingest"]["deps"] if d["path"].startswith("s3://")]
    assert recorded and recorded[0]["nfiles"] == 3 and recorded[0]["md5"].endswith(".dir")
    assert json.loads((repo.path / "metrics" / "data.json").read_text())["rows"] == len(frame)
    assert "up to date" in repo.dvc("status", "--with-deps", "validate").stdout
    assert not (repo.path / "data" / "external" / "penguins").exists()  # read there, never copied here

    s3.delete_object(Bucket="team-data", Key="penguins/part-2.parquet")
    publish(frame.sample(240, random_state=0))  # fewer rows, every species
    status = repo.dvc("status", "--with-deps", "validate").stdout
    assert "modified:           s3://team-data/penguins/" in status
    repo.dvc("repro", "validate")
    assert json.loads((repo.path / "metrics" / "data.json").read_text())["rows"] == 240
    committed = yaml.safe_load(repo.run("git", "show", "HEAD:dvc.lock").stdout)
    raw = next(o["md5"] for o in committed["stages"]["ingest"]["outs"])
    assert raw != next(o["md5"] for o in repo.lock()["stages"]["ingest"]["outs"])


@pytest.mark.e2e
def test_dvc_tracks_partitioned_tables_as_directories_and_checks_either_layout_out(tmp_path):
    """`dvc repro` with partition_rows records each table as a directory output (md5 `.dir`, a file
    per part); read whole again, the same paths are files; `dvc checkout` of the committed lock
    brings the parts back, and `dvc status` is clean either way."""
    repo = new_repo(tmp_path / "repo")
    penguins().to_parquet(
        repo.path / "data" / "external" / "penguins.parquet", index=False, row_group_size=50
    )
    repo.mlcd("data", "use", "data/external/penguins.parquet", "--target", "species")
    repo.set_params(**{"data.partition_rows": 100})
    repo.dvc("repro", "preprocess")
    repo.commit("penguins, 100 rows a part")
    committed = yaml.safe_load(repo.run("git", "show", "HEAD:dvc.lock").stdout)["stages"]
    outs = {o["path"]: o for stage in ("ingest", "preprocess") for o in committed[stage]["outs"]}
    paths = ProjectPaths(repo.path)
    for path in (paths.raw_data, paths.train_data, paths.test_data):
        out = outs[path.relative_to(repo.path).as_posix()]
        assert out["md5"].endswith(".dir") and out["nfiles"] == len(parquet_files(path)) >= 1
    assert outs["data/raw/dataset.parquet"]["nfiles"] == 4  # 344 rows
    parted = read_table(paths.train_data).to_pandas()

    repo.set_params(**{"data.partition_rows": None})
    repo.dvc("repro", "preprocess")
    assert paths.raw_data.is_file() and paths.train_data.is_file()
    assert not repo.lock()["stages"]["ingest"]["outs"][0]["md5"].endswith(".dir")

    repo.run("git", "checkout", "HEAD", "--", ".")  # params.yaml, dvc.lock, metrics/data.json
    repo.dvc("checkout", "--with-deps", "preprocess")
    assert paths.train_data.is_dir() and paths.raw_data.is_dir()
    pd.testing.assert_frame_equal(read_table(paths.train_data).to_pandas(), parted)
    assert "up to date" in repo.dvc("status", "preprocess").stdout


def test_evaluate_in_partitions_scores_every_test_row_as_read_whole(tmp_path):
    """The same model and test split: metrics from one matrix and from partitions of 10 rows agree."""
    from mlcd.modeling.evaluate import run_evaluate

    frame = r_dataset("biopsy")
    project = _project(tmp_path, frame, "class")
    overrides = {"data": {**_sources("table"), "max_duplicate_fraction": 0.05}}
    paths, _ = run_pipeline_in_process(project, overrides)
    whole = json.loads(paths.metrics.read_text())
    params = _params(10, data={"max_duplicate_fraction": 0.05})
    parts = run_evaluate(params.data, params.evaluate, paths)
    assert parts == pytest.approx(whole, rel=1e-12)
    assert json.loads(paths.metrics.read_text()) == parts


@pytest.mark.parametrize(
    "load, target, edits, train",
    [
        (lambda: r_dataset("biopsy"), "class", {}, {}),  # binary: the calibration too
        # regression: the sampled predictions
        (vega_cars, "Miles_per_Gallon", {"drop_missing": True}, {"task": "regression", "estimator": "ridge"}),
    ],
    ids=["biopsy", "cars"],
)
def test_package_in_partitions_never_reads_a_split_whole_and_writes_the_same_bundle(
    load, target, edits, train, tmp_path, monkeypatch
):
    """The features a column at a time, the answers and parity a partition at a time: on tables
    smaller than the calibration's sample, every bundle file but the manifest (which records
    partition_rows) is the same bytes as read whole."""
    from mlcd.bundle import MANIFEST
    from mlcd.modeling import package, reference
    from mlcd.modeling.package import run_package

    project = _project(tmp_path, load(), target, **edits)
    overrides = {"data": {**_sources("table"), "max_duplicate_fraction": 0.05}, "train": train}
    paths, whole = run_pipeline_in_process(project, overrides)
    profile = json.loads((paths.bundle / "reference.json").read_text())
    assert ("calibration" in profile) == (train == {}), "nothing to compare"
    read_whole = {p.name: p.read_bytes() for p in paths.bundle.iterdir()}

    def whole_split(*args, **kwargs):
        raise AssertionError("a split was read whole")

    monkeypatch.setattr(package, "read_split", whole_split)
    monkeypatch.setattr(reference, "read_split", whole_split)
    read_table = pq.read_table

    def one_column_at_most(source, *args, columns=None, **kwargs):
        if columns is None or len(columns) > 1:
            raise AssertionError(f"{columns or 'every column'} of {source} read whole")
        return read_table(source, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq, "read_table", one_column_at_most)
    params = _params(25, data={"max_duplicate_fraction": 0.05}, train=train)
    parts = run_package(params, paths)
    assert parts.parity is not None and whole.parity is not None
    assert parts.parity.rows == whole.parity.rows == row_count(paths.test_data)
    assert parts.parity.max_abs_diff == whole.parity.max_abs_diff
    in_parts = {p.name: p.read_bytes() for p in paths.bundle.iterdir()}
    assert set(in_parts) == set(read_whole)
    for name in set(read_whole) - {MANIFEST}:
        assert in_parts[name] == read_whole[name], name
