"""Dates and timestamps as model inputs: the numbers one datetime feature becomes.

A model cannot take a date. A feature of schema type `datetime` becomes PARTS: its
calendar parts (year, month, day, day of week with Monday 0, hour) and one time value
(days since 1970-01-01, fractional), so trees can split on season or weekday and
linear models see the trend. Preprocess derives them for a whole Arrow column; the API
derives them from one ISO-8601 string per record. Both compute the same float64 values
(tests/unit/test_datetimes.py), which the model then reads as float32.
Timestamps with a UTC offset are taken as their UTC time, except in a date-only feature
(every value at midnight, as written): there the calendar date as written is the value, and
the hour part is left out (DATE_PARTS), since a constant hour teaches a model nothing, and a
midnight in New York is 05:00 UTC, which would make one up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

PARTS = ("year", "month", "day", "day_of_week", "hour", "epoch_days")
DATE_PARTS = tuple(part for part in PARTS if part != "hour")
_EPOCH = datetime(1970, 1, 1)
_DAY = timedelta(days=1)


def part_name(feature: str, part: str) -> str:
    """The model's column for one part of a datetime feature, e.g. "Year [month]"."""
    return f"{feature} [{part}]"


def parts_for(time_of_day: bool) -> tuple[str, ...]:
    """The parts a datetime feature becomes: no hour for a date-only feature."""
    return PARTS if time_of_day else DATE_PARTS


def parse(value: str, local: bool = False) -> datetime | None:
    """An ISO-8601 date or timestamp as a naive datetime, in UTC (or as written, `local`); None if not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.replace(tzinfo=None) if local else moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def has_time_of_day(moment: datetime) -> bool:
    """Whether a value, as written (before any UTC conversion), says more than its date."""
    return (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0)


def parts_of(moment: datetime, parts: tuple[str, ...] = PARTS) -> list[float]:
    every = {
        "year": float(moment.year),
        "month": float(moment.month),
        "day": float(moment.day),
        "day_of_week": float(moment.weekday()),
        "hour": float(moment.hour),
        "epoch_days": (moment - _EPOCH) / _DAY,
    }
    return [every[part] for part in parts]


def to_timestamps(column: pa.ChunkedArray | pa.Array, local: bool = False) -> tuple[pa.Array, list[int]]:
    """A column of ISO-8601 strings or timestamps as naive microsecond timestamps (UTC, or as written
    with `local`), and the bad rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(array.type):
        micros = pc.cast(array, pa.timestamp("us", tz=array.type.tz))
        if local and array.type.tz is not None:
            return pc.local_timestamp(micros), []
        return micros.cast(pa.timestamp("us")), []
    texts = array.to_pylist()
    moments = [None if text is None else parse(str(text), local) for text in texts]
    bad = [i for i, (text, moment) in enumerate(zip(texts, moments, strict=True)) if text and not moment]
    return pa.array(moments, type=pa.timestamp("us")), bad


def arrow_parts(timestamps: pa.Array, parts: tuple[str, ...] = PARTS) -> list[pa.Array]:
    """`parts` of a timestamp column as float64 arrays (nulls stay null: the imputer fills them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    every = {
        "year": pc.year,
        "month": pc.month,
        "day": pc.day,
        "day_of_week": pc.day_of_week,
        "hour": pc.hour,
        "epoch_days": lambda t: pc.divide(pc.cast(pc.cast(t, pa.int64()), pa.float64()), 86_400_000_000.0),
    }
    return [pc.cast(every[part](timestamps), pa.float64()) for part in parts]
