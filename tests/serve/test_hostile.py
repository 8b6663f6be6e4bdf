"""Requests a public endpoint meets on day one: each gets a clear 4xx, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlcd.serve.app import ServeSettings, create_app
from mlcd.serve.payload import MAX_ERRORS
from mlcd.serve.prometheus import REQUESTS
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


def test_a_flood_of_unknown_keys_is_refused_in_one_line(client, record):
    flood = {f"key_{i:07d}": 1 for i in range(150_000)}  # ~2.9 MB of keys
    body = json.dumps(flood)
    assert len(body) > 2_500_000
    response = post(client, body)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem == {"loc": ["body"], "msg": "150,000 unknown fields: send only the model's 30 features"}
    still_serving(client, record)


def test_a_flood_of_empty_records_gets_a_short_answer(client, record):
    response = post(client, json.dumps([{}] * 1000))  # 3 KB
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_ERRORS + 1 and "29,950 more problems" in detail[-1]["msg"]
    assert len(response.content) < 10_000
    still_serving(client, record)


def test_a_key_sent_twice_is_refused(client, record):
    body = json.dumps(record)[:-1] + ', "mean_radius": 99.0}'
    response = post(client, body)
    assert response.status_code == 400
    assert (
        response.json()["detail"] == "the key 'mean_radius' appears twice in one object: send each field once"
    )
    # a colon inside a string value is not mistaken for a second key
    text = post(client, json.dumps([record, {**record, "x": "12:30"}]))
    assert text.status_code == 422 and "unknown field" in text.text
    still_serving(client, record)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1@evil.example"])
def test_no_redirect_is_built_from_the_host_header(client, record, host):
    response = client.post(
        "/predict/", content=json.dumps(record), headers={**JSON, "host": host}, follow_redirects=False
    )
    assert response.status_code == 404 and "location" not in response.headers
    assert client.get("/docs").status_code == 404  # no page loading scripts from a CDN by default
    still_serving(client, record)


def test_a_client_that_leaves_mid_body_is_no_server_error(built_project, record):
    """Driven at the ASGI level: the server hands the app a disconnect before the body is complete."""
    settings = ServeSettings(bundle=built_project / "models" / "bundle")
    app = create_app(load(settings), settings)
    before = REQUESTS.labels("/predict", "POST", "499")._value.get()
    sent = []

    async def scenario():
        messages = iter(
            [
                {"type": "http.request", "body": b'{"mean_radius": ', "more_body": True},
                {"type": "http.disconnect"},
            ]
        )

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/predict",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"900")],
        }
        await app(scope, receive, send)

    asyncio.run(scenario())
    assert sent == []  # nobody to answer
    assert REQUESTS.labels("/predict", "POST", "499")._value.get() == before + 1
    assert REQUESTS.labels("/predict", "POST", "500")._value.get() == 0


def _budget_scenario(built_project, record, uploads: list[tuple[int, bytes]]) -> dict[str, dict]:
    """Slow uploads (declared length, bytes sent so far) hold their connections while one quick
    /predict comes; then they leave and another comes. Returns each exchange's answer."""
    settings = ServeSettings(bundle=built_project / "models" / "bundle", max_inflight_bytes=64 * 1024)
    app = create_app(load(settings), settings)
    body = json.dumps(record).encode()
    answers: dict[str, dict] = {}

    async def scenario():
        release = asyncio.Event()

        def slow_receive(sent: bytes):
            messages = [{"type": "http.request", "body": sent, "more_body": True}]

            async def receive():
                if messages:
                    return messages.pop()
                await release.wait()
                return {"type": "http.disconnect"}

            return receive

        async def quick_receive():
            return {"type": "http.request", "body": body, "more_body": False}

        def sender(name):
            async def send(message):
                answers.setdefault(name, {}).update(message)

            return send

        def scope(length):
            headers = [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]
            return {"type": "http", "method": "POST", "path": "/predict", "headers": headers}

        slow = [
            asyncio.create_task(app(scope(declared), slow_receive(sent), sender(f"slow {i}")))
            for i, (declared, sent) in enumerate(uploads)
        ]
        await asyncio.sleep(0.05)
        await app(scope(len(body)), quick_receive, sender("quick"))
        release.set()
        await asyncio.gather(*slow)
        await app(scope(len(body)), quick_receive, sender("after"))

    asyncio.run(scenario())
    return answers


def test_requests_over_the_inflight_budget_get_503_with_retry_after(built_project, record):
    answers = _budget_scenario(built_project, record, [(70_000, b"[" * 65_000)])  # 65,000 bytes arrived
    refused = answers["quick"]
    assert refused["status"] == 503 and (b"retry-after", b"1") in refused["headers"]
    assert b"busy: 65,000 bytes" in refused["body"]
    assert answers["after"]["status"] == 200  # the budget is given back


def test_clients_that_declare_megabytes_and_trickle_cannot_refuse_everyone(built_project, record):
    """Issue 28: four connections declaring 4 MiB and sending one byte made every prediction a 503."""
    answers = _budget_scenario(built_project, record, [(4 * 1024 * 1024, b"[")] * 4)
    assert answers["quick"]["status"] == 200, answers["quick"]
    assert answers["after"]["status"] == 200


@pytest.fixture(scope="module")
def guarded(built_project):
    settings = ServeSettings(bundle=built_project / "models" / "bundle", api_token="s3cret-token")
    with TestClient(create_app(load(settings), settings)) as client:
        yield client


def test_the_token_guards_predictions_and_provenance_but_not_probes(guarded, record):
    infer = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [v]} for name, v in record.items()
        ]
    }
    calls = [
        ("POST", "/predict", record),
        ("POST", "/invocations", {"dataframe_records": [record]}),
        ("POST", "/v2/models/model/infer", infer),
        ("GET", "/v2/models/model", None),
        ("GET", "/version", None),
    ]
    for method, path, body in calls:
        bare = guarded.request(method, path, json=body)
        assert bare.status_code == 401, path
        assert bare.headers["www-authenticate"] == "Bearer"
        wrong = guarded.request(method, path, json=body, headers={"authorization": "Bearer s3cret-tokeN"})
        assert wrong.status_code == 401, path
        right = guarded.request(method, path, json=body, headers={"authorization": "Bearer s3cret-token"})
        assert right.status_code == 200, (path, right.text)
    for path in ("/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready", "/openapi.json"):
        assert guarded.get(path).status_code == 200, path
    assert (
        guarded.get("/openapi.json").json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    )


# Issue 28's 500s and ambiguous inputs: each a 4xx naming the problem, and the server keeps serving.


def _infer(record: dict) -> dict:
    return {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in record.items()]}


def test_an_integer_of_thousands_of_digits_anywhere_is_a_400(client, record):
    for where in ('{"x": %s}', "[%s]"):
        response = post(client, where % ("7" * 5000))
        assert response.status_code == 400, response.text
        assert "thousands of digits" in response.json()["detail"]
        assert len(response.content) < 300
    still_serving(client, record)


@pytest.mark.parametrize("length", ["1²", "٣٠", "9" * 5000, "-1", ""])
def test_a_v2_header_length_that_is_not_ascii_digits_is_a_422(client, record, length):
    body = json.dumps(_infer(record)).encode()
    headers = {**JSON, "inference-header-content-length": length.encode()}  # raw UTF-8 bytes
    response = client.post("/v2/models/model/infer", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert "does not fit" in response.json()["error"] and len(response.content) < 300
    still_serving(client, record)


@pytest.mark.parametrize("datatype", [[], {"FP64": 1}, None, 64])
def test_a_v2_datatype_that_is_not_a_name_is_a_422(client, record, datatype):
    body = _infer(record)
    body["inputs"][0]["datatype"] = datatype
    response = client.post("/v2/models/model/infer", json=body)
    assert response.status_code == 422, response.text
    assert "is not BYTES or a number type" in response.json()["error"] and len(response.content) < 300
    still_serving(client, record)


def test_a_column_named_twice_is_refused_in_csv_and_dataframe_split(client, record):
    names, values = list(record), [str(v) for v in record.values()]
    csv_body = ",".join([*names, names[0]]) + "\n" + ",".join([*values, "99"]) + "\n"
    response = client.post("/invocations", content=csv_body, headers={"content-type": "text/csv"})
    assert response.status_code == 422 and "names column 'mean_radius' twice" in response.text, response.text
    split = {"dataframe_split": {"columns": [*names, names[0]], "data": [[*record.values(), 99.0]]}}
    response = client.post("/invocations", json=split)
    assert response.status_code == 422 and "names column 'mean_radius' twice" in response.text, response.text
    still_serving(client, record)


@pytest.mark.parametrize("cell", ["1_2.46", "١٢", " 12", "0x1A", "nan", "+1"])
def test_a_csv_number_is_what_json_calls_a_number(client, record, cell):
    names, values = list(record), [str(v) for v in record.values()]
    values[0] = cell
    body = ",".join(names) + "\n" + ",".join(values) + "\n"
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 422, (cell, response.text)
    assert "mean_radius" in response.text
    assert (
        client.post(
            "/invocations", content=body.replace(cell, "12.5e0", 1), headers={"content-type": "text/csv"}
        ).status_code
        == 200
    )


def test_a_path_with_a_newline_after_infer_is_not_infer(client, record):
    response = client.post("/v2/models/model/infer%0A", json=_infer(record))
    assert response.status_code == 404, response.text
    assert client.post("/v2/models/model/infer", json=_infer(record)).status_code == 200


def test_two_authorization_headers_are_a_400(guarded, record):
    two = [("authorization", "Bearer s3cret-token"), ("authorization", "Bearer other")]
    for pair in (two, two[::-1]):
        response = guarded.post("/predict", json=record, headers=pair)
        assert response.status_code == 400 and "one Authorization header" in response.text


@pytest.mark.parametrize(
    ("datatype", "value", "problem"),
    [
        ("FP16", 70000.0, "beyond FP16's range"),
        ("INT8", 300, "outside INT8's range -128..127"),
        ("INT8", 12.46, "is not a whole number"),
        ("UINT8", -1, "outside UINT8's range"),
        ("BYTES", 12.5, "is float, not a string"),
        ("FP32", "12.5", "is str, not a number"),
        ("INT64", True, "is bool, not a number"),
    ],
)
def test_v2_json_data_must_fit_its_declared_datatype(client, record, datatype, value, problem):
    body = _infer(record)
    body["inputs"][0].update(datatype=datatype, data=[value])
    response = client.post("/v2/models/model/infer", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith("input 'mean_radius': value 0 ") and problem in error, error
    assert error.endswith(f"(datatype {datatype})")
    body["inputs"][0].update(datatype="INT16" if datatype.startswith(("INT", "UINT")) else "FP64", data=[14])
    assert client.post("/v2/models/model/infer", json=body).status_code == 200


def test_error_answers_never_grow_with_the_request(client, record):
    """A key of a megabyte, an input name of a megabyte: the answer names their start only."""
    huge = "k" * 1_000_000
    response = post(client, json.dumps({**record, huge: 1}))
    assert response.status_code == 422 and len(response.content) < 1000, len(response.content)
    assert "(1,000,000 characters)" in response.text
    body = _infer(record)
    body["inputs"][0]["name"] = huge
    response = client.post("/v2/models/model/infer", json=body)
    assert response.status_code == 422 and len(response.content) < 1000, len(response.content)
    dated = post(client, json.dumps({**record, "mean_radius": huge}))
    assert dated.status_code == 422 and len(dated.content) < 1000
    still_serving(client, record)


def test_v2_tensors_answer_alike_whichever_way_they_are_read(client, built_project):
    """FP64 numbers within bounds take the column-wise path; INT16/FP16 data (checked value by value)
    and a request with an extra input take the record-by-record one. The answers must agree."""
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet").drop(columns="diagnosis")
    rows = frame.head(7)
    names = list(rows)[::-1]  # not the model's order: the columns are matched by name
    columns = {
        "inputs": [{"name": n, "shape": [7], "datatype": "FP64", "data": rows[n].tolist()} for n in names]
    }
    fast = client.post("/v2/models/model/infer", json=columns)
    assert fast.status_code == 200, fast.text
    declared = json.loads(json.dumps(columns))
    for tensor in declared["inputs"]:
        tensor["datatype"] = "FP16"
        tensor["data"] = [[v] for v in tensor["data"]]  # shape [rows, 1] written nested
        tensor["shape"] = [7, 1]
    slow = client.post("/v2/models/model/infer", json=declared)
    assert slow.status_code == 200, slow.text
    as_records = client.post("/predict", content=rows.to_json(orient="records"), headers=JSON).json()
    for answer in (fast.json(), slow.json()):
        assert answer["outputs"][0]["data"] == as_records["labels"]
    assert fast.json()["outputs"][1]["data"] == pytest.approx(slow.json()["outputs"][1]["data"], rel=1e-3)

    extra = json.loads(json.dumps(columns))
    extra["inputs"].append({"name": "shoe_size", "shape": [7], "datatype": "FP64", "data": [1.0] * 7})
    response = client.post("/v2/models/model/infer", json=extra)
    assert response.status_code == 422 and "input 'shoe_size'" in response.json()["error"], response.text
    missing = {"inputs": columns["inputs"][1:]}
    response = client.post("/v2/models/model/infer", json=missing)
    assert response.status_code == 422 and "field required" in response.json()["error"], response.text


@pytest.mark.parametrize(
    "twice",
    [
        '"data": [1.0], "data": [14.0]',  # inside a tensor: which value a parser keeps differs
        '"parameters": {"a": 1, "a": 2}, "data": [14.0]',  # inside its parameters
    ],
)
def test_a_v2_key_sent_twice_is_refused(client, record, twice):
    body = json.dumps(_infer(record))
    first = json.dumps(_infer(record)["inputs"][0])
    twice_tensor = first.replace(f'"data": [{json.dumps(record["mean_radius"])}]', twice)
    response = client.post("/v2/models/model/infer", content=body.replace(first, twice_tensor), headers=JSON)
    assert response.status_code == 400 and "appears twice in one object" in response.text, response.text


def test_a_v2_name_or_id_holding_colons_is_read_right(client, record):
    """Colons inside strings outnumber the keys: the body is walked once more, and still served."""
    body = {**_infer(record), "id": "a:b:c", "parameters": {"note": "12:30"}}
    response = client.post("/v2/models/model/infer", json=body)
    assert response.status_code == 200 and response.json()["id"] == "a:b:c", response.text
