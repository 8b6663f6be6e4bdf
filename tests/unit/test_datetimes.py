"""A datetime feature's parts: preprocess (Arrow, a column) and the API (one string) must agree exactly."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlcd.datetimes import PARTS, arrow_parts, parse, parts_of, to_timestamps

SENT = [
    "1970-01-01",
    "1979-01-01 00:00:00.000000",
    "2024-02-29T23:59:59.999999",
    "2000-03-05T12:30",
    "1969-07-20T20:17:40",
    "2024-05-31T13:45:00+02:00",  # an offset: taken as its UTC time
    "2024-05-31T11:45:00Z",
]


def test_the_api_and_preprocess_derive_the_same_numbers():
    timestamps, bad = to_timestamps(pa.array(SENT))
    assert bad == []
    columns = [part.to_pylist() for part in arrow_parts(timestamps)]
    for row, text in enumerate(SENT):
        from_api = parts_of(parse(text))
        from_preprocess = [column[row] for column in columns]
        assert from_api == from_preprocess, text  # exact: both are float64 before the model's float32
    assert dict(zip(PARTS, parts_of(parse("2024-05-31T13:45:00+02:00")), strict=True)) == pytest.approx(
        {"year": 2024, "month": 5, "day": 31, "day_of_week": 4, "hour": 11, "epoch_days": 19874.489583333}
    )


def test_timestamp_columns_read_like_strings_and_gaps_stay_gaps():
    strings, _ = to_timestamps(pa.array(["2024-05-31T11:45:00", None]))
    typed, _ = to_timestamps(
        pa.array([parse("2024-05-31T11:45:00"), None], type=pa.timestamp("ns", tz="UTC"))
    )
    assert strings.to_pylist() == typed.to_pylist()
    assert [part.to_pylist()[1] for part in arrow_parts(strings)] == [None] * len(PARTS)


def test_values_that_are_not_iso_dates_are_named_by_row():
    _, bad = to_timestamps(pa.array(["2024-05-31", "31/05/2024", None, "", "yesterday"]))
    assert bad == [1, 4]
