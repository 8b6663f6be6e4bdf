"""A processed split as model input, for train, evaluate and package (their DVC deps name this file)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from mlcd.data.schema import DatasetSchema


def read_split(path: Path, schema: DatasetSchema) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a split for train, evaluate and package (pyarrow loads pandas here)."""
    # One consolidated block: scikit-learn then takes the features without another copy.
    frame = pq.read_table(path).to_pandas(self_destruct=True)
    return frame[schema.feature_names], frame[schema.target.name]
