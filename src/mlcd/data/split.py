"""Preprocess: a seeded, stratified train/test split of the validated data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from mlcd.config import DataParams, PreprocessParams, ProjectPaths
from mlcd.console import stage
from mlcd.data.schema import DatasetSchema, load_schema
from mlcd.data.validation import read_raw
from mlcd.files import write_with

MISSING_CATEGORY = "__missing__"


def tidy(frame: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """Schema columns only, labels as text, missing categories as their own level."""
    frame = frame[schema.columns]
    for name in schema.categorical:
        frame[name] = frame[name].astype("string").fillna(MISSING_CATEGORY).astype(object)
    if schema.task == "classification":
        frame[schema.target.name] = frame[schema.target.name].astype(str)
    return frame


def split(
    frame: pd.DataFrame, schema: DatasetSchema, params: PreprocessParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = frame[schema.target.name] if schema.task == "classification" else None
    train, test = train_test_split(
        frame, test_size=params.test_size, random_state=params.seed, stratify=stratify
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def read_split(path: Path, schema: DatasetSchema) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_parquet(path)
    return frame[schema.feature_names], frame[schema.target.name]


def run_preprocess(data: DataParams, params: PreprocessParams, paths: ProjectPaths) -> None:
    with stage("preprocess") as log:
        schema = load_schema(paths.schema(data))
        frame = tidy(read_raw(paths, columns=schema.columns), schema)
        train, test = split(frame, schema, params)
        for part, target in ((train, paths.train_data), (test, paths.test_data)):
            write_with(target, lambda tmp, part=part: part.to_parquet(tmp, index=False))
        log.add(f"{len(frame):,} rows -> train {len(train):,} ({paths.train_data})")
        log.add(f"test {len(test):,} ({paths.test_data}), seed {params.seed}")
