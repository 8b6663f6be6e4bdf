"""A processed split as model input, for train, evaluate and package (their DVC deps name this file)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlcd.data.schema import DatasetSchema


def read_split(path: Path, schema: DatasetSchema, float32: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a split (pyarrow loads pandas here).

    Numeric features come as float32 by default: the ONNX model computes in float32 anyway, scikit-learn's
    trees cast to float32 themselves, and it halves the memory of train and evaluate (a float32 logistic
    regression fits to within 1e-6 of the float64 one). Package reads float64 to record exact ranges.
    """
    table = pq.read_table(path, columns=[*schema.feature_names, schema.target.name])
    if float32:
        numeric = set(schema.numeric)
        table = table.cast(
            pa.schema(
                [field.with_type(pa.float32()) if field.name in numeric else field for field in table.schema]
            )
        )
    # One consolidated block: scikit-learn then takes the features without another copy.
    frame = table.to_pandas(self_destruct=True)
    del table
    return frame[schema.feature_names], frame[schema.target.name]
