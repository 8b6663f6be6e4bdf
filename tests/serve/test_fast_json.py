"""serve/fast_json.py reads the common bodies in compiled code: it must read exactly what the general
reader reads, to the bit, and leave to it every body it would refuse or read otherwise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlcd.serve.fast_json import predict_numbers, v2_numbers
from mlcd.serve.payload import PayloadError, parse_json, to_batch
from mlcd.serve.server import load
from mlcd.serve.v2 import Protocol, _tensor_key_count

MAX_BATCH = 1000


@pytest.fixture(scope="module")
def model(built_project):
    from mlcd.serve.app import ServeSettings

    return load(ServeSettings(bundle=built_project / "models" / "bundle"))


@pytest.fixture(scope="module")
def records(built_project) -> list[dict]:
    frame = pd.read_parquet(built_project / "data" / "processed" / "test.parquet").drop(columns="diagnosis")
    return frame.to_dict(orient="records")


def general_predict(body: bytes, model) -> np.ndarray:
    return to_batch(parse_json(body), model.layout, MAX_BATCH).numbers


def spelled(records: list[dict], seed: int) -> list[dict]:
    """The records' values as clients write them: many digits, exponents, integers, negatives
    (within each feature's bounds), so float parsing is put to the test."""
    rng = np.random.default_rng(seed)
    out = []
    for record in records:
        changed = {}
        for name, value in record.items():
            kind = rng.integers(4)
            if kind == 0:
                changed[name] = float(np.nextafter(value, np.inf))  # the last digit matters
            elif kind == 1:
                changed[name] = int(value)
            elif kind == 2:
                changed[name] = float(f"{value:.17e}")
            else:
                changed[name] = value * float(rng.uniform(0.5, 1.0))
        out.append(changed)
    return out


def test_predict_bodies_read_to_the_same_bits_as_the_general_reader(model, records):
    bodies = [json.dumps(r).encode() for r in records[:40]]
    bodies += [json.dumps(r).encode() for r in spelled(records[:40], seed=1)]
    bodies += [json.dumps(spelled(records[:50], seed=2)).encode(), json.dumps(records[:1]).encode()]
    bodies.append(json.dumps(records[0], indent=2).replace("1", "1").encode())  # whitespace, \n
    for body in bodies:
        fast = predict_numbers(body, model.layout, MAX_BATCH)
        assert fast is not None, body[:100]
        general = general_predict(body, model)
        assert fast.dtype == general.dtype and fast.shape == general.shape
        assert fast.tobytes() == general.tobytes(), body[:100]


@pytest.mark.parametrize(
    "change",
    [
        lambda r: {**r, "mean_radius": True},  # bool is not a number
        lambda r: {**r, "mean_radius": None},
        lambda r: {**r, "mean_radius": "12.5"},
        lambda r: {**r, "mean_radius": 1e39},  # beyond float32
        lambda r: {**r, "mean_radius": -1.0},  # below the schema's bound
        lambda r: {**r, "mean_radius": [1.0]},
        lambda r: {**r, "mean_radius": 10**40},
        lambda r: {k: v for k, v in r.items() if k != "mean_radius"},
        lambda r: {**r, "shoe_size": 42},
        lambda r: [],
        lambda r: [r] * (MAX_BATCH + 1),
        lambda r: [r, 3],
    ],
)
def test_predict_bodies_it_does_not_take_are_left_to_the_general_reader(model, records, change):
    body = json.dumps(change(records[0])).encode()
    assert predict_numbers(body, model.layout, MAX_BATCH) is None
    with pytest.raises(PayloadError):
        general_predict(body, model)


def test_an_integer_past_int64_is_left_to_the_general_reader(model, records):
    """As a float it could round onto a bound the exact integer is past (float32's largest)."""
    body = json.dumps({**records[0], "mean_radius": 340282346638528859811704183484516925441}).encode()
    assert predict_numbers(body, model.layout, MAX_BATCH) is None
    body = json.dumps({**records[0], "mean_radius": 12}).encode()
    assert predict_numbers(body, model.layout, MAX_BATCH).tobytes() == general_predict(body, model).tobytes()


@pytest.mark.parametrize(
    "body",
    [
        '{"mean_radius": 1, "mean_radius": 14.0, REST}',  # a key twice: decoders keep different ones
        "{REST, NaN}",
        "{REST}  trailing",
        "{REST",
        '{"mean_radius": 1e400, REST}',
        '{"mean_radius": 14.0, REST, "mean_radius": 14.0}',
    ],
)
def test_predict_bodies_that_are_not_plain_json_are_left_to_the_general_reader(model, records, body):
    rest = json.dumps({k: v for k, v in records[0].items() if k != "mean_radius"})[1:-1]
    raw = body.replace("REST", rest).encode()
    assert predict_numbers(raw, model.layout, MAX_BATCH) is None
    with pytest.raises(PayloadError):
        general_predict(raw, model)


def _tensors(frame: list[dict], **change) -> dict:
    names = list(frame[0])[::-1]  # not the model's order
    return {
        "inputs": [
            {"name": n, "shape": [len(frame)], "datatype": "FP64", "data": [r[n] for r in frame], **change}
            for n in names
        ]
    }


def test_v2_bodies_read_to_the_same_bits_as_the_general_reader(model, records):
    protocol = Protocol(model)
    for frame in (records[:1], records[:7], spelled(records[:20], seed=3)):
        for datatype in ("FP64", "FP32"):
            body = json.dumps(_tensors(frame, datatype=datatype)).encode()
            fast = v2_numbers(body, model.layout, MAX_BATCH)
            assert fast is not None
            general = protocol.parse(body, None).batch(model.layout, MAX_BATCH).numbers
            assert fast.tobytes() == general.tobytes()


@pytest.mark.parametrize(
    "change",
    [
        lambda b: {**b, "id": "a"},
        lambda b: {**b, "parameters": {"a": 1}},
        lambda b: {**b, "outputs": [{"name": "label"}]},
        lambda b: {"inputs": [{**t, "datatype": "INT16"} for t in b["inputs"]]},
        lambda b: {"inputs": [{**t, "shape": [1, 1]} for t in b["inputs"]]},
        lambda b: {"inputs": [{**t, "shape": [2]} for t in b["inputs"]]},
        lambda b: {"inputs": [{**t, "data": [True]} for t in b["inputs"]]},
        lambda b: {"inputs": [*b["inputs"], b["inputs"][0]]},  # an input twice
        lambda b: {"inputs": b["inputs"][1:]},
        lambda b: {"inputs": [{**t, "name": t["name"] + ":x"} for t in b["inputs"]]},
        lambda b: {"inputs": [{**t, "data": [-1.0]} for t in b["inputs"]]},  # below bounds
        lambda b: {"inputs": []},
    ],
)
def test_v2_bodies_it_does_not_take_are_left_to_the_general_reader(model, records, change):
    body = json.dumps(change(_tensors(records[:1]))).encode()
    assert v2_numbers(body, model.layout, MAX_BATCH) is None


def test_a_v2_key_twice_is_left_to_the_general_reader(model, records):
    body = json.dumps(_tensors(records[:1]))
    first = body.index('"data"')
    twice = (body[:first] + '"data": [1.0], ' + body[first:]).encode()
    assert v2_numbers(twice, model.layout, MAX_BATCH) is None
    assert _tensor_key_count(json.loads(twice)) != twice.count(b":")


def test_a_foreign_table_with_odd_names_and_open_bounds_reads_as_the_general_reader(tmp_path):
    """Not our dataset: scikit-learn's wine table, its columns renamed as teams name them (slashes,
    spaces, parentheses, a leading digit, an accent a client may send escaped, a comma), bounds
    open on one side or both, integers and floats. Every row, one by one and as one list."""
    from sklearn.datasets import load_wine

    from mlcd.serve.model import Feature, Layout

    frame = load_wine(as_frame=True).data
    odd = ["od280/od315 of wines", "1st hue (visual)", "teneur en alcool (%) é", "malic acid, mg/l"]
    frame = frame.rename(columns=dict(zip(frame.columns[:4], odd, strict=True)))
    frame[frame.columns[4]] = frame[frame.columns[4]].round().astype(int)  # integers in the JSON
    features = []
    for index, name in enumerate(frame.columns):
        low, high = float(frame[name].min()), float(frame[name].max())
        bounds = [(low, high), (None, high), (low, None), (None, None)][index % 4]
        features.append(Feature(name=name, numeric=True, low=bounds[0], high=bounds[1]))
    layout = Layout(tuple(features))
    records = frame.to_dict(orient="records")
    bodies = [json.dumps(r).encode() for r in records] + [json.dumps(records).encode()]
    bodies.append(json.dumps(records[0], ensure_ascii=False).encode())  # the accent as UTF-8
    for body in bodies:
        fast = predict_numbers(body, layout, MAX_BATCH)
        assert fast is not None, body[:100]
        general = to_batch(parse_json(body), layout, MAX_BATCH).numbers
        assert fast.tobytes() == general.tobytes(), body[:100]
    # Past a closed bound, the general reader decides (and refuses).
    past = json.dumps({**records[0], frame.columns[0]: float(frame[frame.columns[0]].max()) + 1}).encode()
    assert predict_numbers(past, layout, MAX_BATCH) is None
    with pytest.raises(PayloadError):
        to_batch(parse_json(past), layout, MAX_BATCH)
    # A name with a colon (the colon count could not tell a key twice) or one msgspec will not
    # match (a quote, a backslash): nothing is read fast, and the general reader answers.
    for name in ("ratio a:b", 'say "malic"', "a\\b"):
        renamed = Layout((Feature(name=name, numeric=True), *features[1:]))
        body = json.dumps({name: 1.0, **{k: v for k, v in records[0].items() if k != odd[0]}}).encode()
        assert predict_numbers(body, renamed, MAX_BATCH) is None
        assert to_batch(parse_json(body), renamed, MAX_BATCH).numbers.shape == (1, len(features))
