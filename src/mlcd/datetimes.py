"""Dates and timestamps as model inputs: the numbers one datetime feature becomes.

A model cannot take a date. A feature of schema type `datetime` becomes PARTS: its
calendar parts (year, month, day, day of week with Monday 0, hour) and one time value
(days since 1970-01-01, fractional), so trees can split on season or weekday and
linear models see the trend. Preprocess derives them for a whole Arrow column; the API
derives them from one ISO-8601 string per record. Both compute the same float64 values
(tests/unit/test_datetimes.py), which the model then reads as float32.
Timestamps with a UTC offset are taken as their UTC time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

PARTS = ("year", "month", "day", "day_of_week", "hour", "epoch_days")
_EPOCH = datetime(1970, 1, 1)
_DAY = timedelta(days=1)


def part_name(feature: str, part: str) -> str:
    """The model's column for one part of a datetime feature, e.g. "Year [month]"."""
    return f"{feature} [{part}]"


def parse(value: str) -> datetime | None:
    """An ISO-8601 date or timestamp as a naive UTC datetime; None if it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parts_of(moment: datetime) -> list[float]:
    return [
        float(moment.year),
        float(moment.month),
        float(moment.day),
        float(moment.weekday()),
        float(moment.hour),
        (moment - _EPOCH) / _DAY,
    ]


def to_timestamps(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, list[int]]:
    """A column of ISO-8601 strings or timestamps as naive microsecond timestamps, and the bad rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(array.type):
        return pc.cast(array, pa.timestamp("us", tz=array.type.tz)).cast(pa.timestamp("us")), []
    texts = array.to_pylist()
    moments = [None if text is None else parse(str(text)) for text in texts]
    bad = [i for i, (text, moment) in enumerate(zip(texts, moments, strict=True)) if text and not moment]
    return pa.array(moments, type=pa.timestamp("us")), bad


def arrow_parts(timestamps: pa.Array) -> list[pa.Array]:
    """PARTS of a timestamp column as float64 arrays (nulls stay null: the imputer fills them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    micros = pc.cast(pc.cast(timestamps, pa.int64()), pa.float64())
    whole = [pc.year(timestamps), pc.month(timestamps), pc.day(timestamps), pc.day_of_week(timestamps)]
    whole.append(pc.hour(timestamps))
    return [pc.cast(part, pa.float64()) for part in whole] + [pc.divide(micros, 86_400_000_000.0)]
