"""The text of a class label: the one rule every stage and the API use.

A class is a string everywhere after ingest (schema, profile, split, model, bundle, API,
metric labels), and the same value must become the same string on every path. pandas and
Arrow disagree (pandas writes `1.0` and `True`, Arrow `1` and `true`), so neither is asked:
integral numbers lose their `.0` (a 0/1 target stored as float, as CSV gaps make it, is
classes "0" and "1"), booleans are "true"/"false" as in JSON, other numbers keep their
shortest form, text stays as it is. Missing values stay missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandas as pd

# Integral floats up to here convert to int64 exactly; beyond, they keep their float text.
_EXACT_INTEGERS = 2.0**53


def label_texts(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value's class label as a string array (nulls stay null)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_boolean(array.type):
        return pc.if_else(array, "true", "false")
    if pa.types.is_floating(array.type):
        present = pc.drop_null(array)
        finite = pc.is_finite(present)
        integral = pc.equal(pc.floor(present), present)
        small = pc.less_equal(pc.abs(present), _EXACT_INTEGERS)
        if len(present) == 0 or pc.all(pc.and_(pc.and_(finite, integral), small)).as_py():
            return pc.cast(pc.cast(array, pa.int64()), pa.string())
    return pc.cast(array, pa.string())


def series_labels(column: pd.Series) -> pd.Series:
    """label_texts for a pandas column, as a Series of str (missing values dropped)."""
    import pandas as pd

    present = column.dropna()
    if isinstance(present.dtype, pd.CategoricalDtype):
        present = present.astype(present.dtype.categories.dtype)
    array = pa.array(present.to_numpy(dtype=object) if present.dtype == object else present, from_pandas=True)
    return pd.Series(label_texts(array).to_pylist(), index=present.index, dtype=object)
