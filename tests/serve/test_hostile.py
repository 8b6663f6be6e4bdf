"""Requests a public endpoint meets on day one: each gets a clear 4xx, and the server keeps serving."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.payload import MAX_ERRORS
from mlcd.serve.server import load

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(built_project):
    settings = ServeSettings(bundle=built_project / "models" / "bundle", max_batch=2000)
    with TestClient(create_app(load(settings), settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def record(built_project) -> dict:
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet")
    return frame.drop(columns="diagnosis").iloc[0].to_dict()


def post(client, body: str | bytes):
    return client.post("/predict", content=body, headers=JSON)


def still_serving(client, record) -> None:
    assert client.get("/ready").status_code == 200
    assert post(client, json.dumps(record)).status_code == 200


def test_deep_nesting_is_a_400(client, record):
    response = post(client, "[" * 10_000 + "]" * 10_000)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    still_serving(client, record)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1" + "0" * 400, "beyond float32's range"),  # 401 digits: OverflowError before
        ("1e39", "beyond float32's range"),  # finite in JSON, infinite in float32
        ("-3.5e38", "beyond float32's range"),
    ],
)
def test_numbers_beyond_float32_name_the_field(client, record, value, message):
    body = json.dumps({**record, "mean_radius": 0.0}).replace('"mean_radius": 0.0', f'"mean_radius": {value}')
    response = post(client, body)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "mean_radius"] and message in problem["msg"]
    still_serving(client, record)


def test_values_each_in_range_that_overflow_together_get_no_nan_answer(client, record):
    huge = {name: 3e38 for name in record}
    response = post(client, json.dumps(huge))
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        for row in response.json()["probabilities"]:
            assert all(np.isfinite(p) for p in row.values())
    else:
        assert "no finite answer for record 0" in response.json()["detail"]
    still_serving(client, record)


def test_a_flood_of_problems_gets_a_short_answer(client, record):
    flood = [{f"unknown_{i}": 1 for i in range(100)} for _ in range(100)]
    response = post(client, json.dumps(flood))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_ERRORS + 1
    assert detail[-1]["msg"].startswith("... and ") and "more problems like these" in detail[-1]["msg"]
    assert len(response.content) < 20_000
    still_serving(client, record)
