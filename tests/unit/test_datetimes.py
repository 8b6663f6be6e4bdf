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


def _seattle_dates(offset: str) -> list[str]:
    """vega's Seattle weather dates (a real date-only column) written as local midnights with an offset."""
    from vega_datasets import local_data

    dates = local_data.seattle_weather()["date"].head(60)
    return [f"{d:%Y-%m-%d}T00:00:00{offset}" for d in dates]


@pytest.mark.parametrize("offset", ["-05:00", "+02:00"])
def test_a_date_only_column_gets_no_hour_and_keeps_its_calendar_date(offset):
    import pandas as pd

    from mlcd.data.schema import infer_schema
    from mlcd.datetimes import DATE_PARTS
    from mlcd.serve.payload import _date_problem

    sent = _seattle_dates(offset)
    frame = pd.DataFrame({"date": sent, "weather": ["sun", "rain"] * 30})
    (spec,) = infer_schema(frame, "weather").features
    assert spec.dtype == "datetime" and spec.time_of_day is False and spec.parts == DATE_PARTS
    timestamps, _ = to_timestamps(pa.array(sent), local=True)
    columns = [part.to_pylist() for part in arrow_parts(timestamps, spec.parts)]
    for row, text in enumerate(sent):
        problem, from_api = _date_problem(text, spec.parts)
        assert problem is None and from_api == [column[row] for column in columns], text
        year, month, day = (int(p) for p in text[:10].split("-"))
        assert from_api[:3] == [year, month, day]  # the date as written, not shifted to UTC


def test_a_column_with_times_keeps_its_hour():
    import pandas as pd

    from mlcd.data.schema import infer_schema

    frame = pd.DataFrame({"at": ["2024-05-31T00:00:00", "2024-05-31T13:45:00"] * 15, "y": ["a", "b"] * 15})
    (spec,) = infer_schema(frame, "y").features
    assert spec.time_of_day is None and spec.parts == PARTS
