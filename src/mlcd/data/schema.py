"""The dataset contract: which columns exist, their types, ranges and the target.

A schema is a small YAML file under data/schemas/ that a team edits (or creates
with `mlcd schema infer`) when it points the pipeline at its own data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from mlcd.config import describe_problem
from mlcd.data.labels import series_labels
from mlcd.datetimes import has_time_of_day, parse, part_name, parts_for
from mlcd.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

FeatureType = Literal["float", "int", "category", "datetime"]
# A numeric target with more distinct values than this is inferred as a regression target.
MAX_CLASSES = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    name: str
    dtype: FeatureType = "float"
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    # Datetime features only: false when every value is a date (midnight, as written), so the model
    # gets no hour part (datetimes.DATE_PARTS). Left out, a datetime feature has every part.
    time_of_day: bool | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """What a datetime feature becomes for the model (datetimes.PARTS or DATE_PARTS); () otherwise."""
        return parts_for(self.time_of_day is not False) if self.dtype == "datetime" else ()

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Any column name works: the API takes it as the JSON key, and the ONNX input
        # name skl2onnx derives from it is recorded in the bundle's schema.json.
        if not value.strip():
            raise ValueError("a feature name may not be empty or blank")
        return value


class TargetSpec(_Strict):
    name: str
    classes: list[str] | None = None
    positive: str | None = None
    # Rows whose target is missing are left out of training and testing (counted in
    # metrics/data.json) instead of failing validation.
    drop_missing: bool = False

    @model_validator(mode="after")
    def _positive_is_a_class(self) -> TargetSpec:
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ValueError("target.classes needs at least two classes")
            if self.positive is not None and self.positive not in self.classes:
                raise ValueError(f"target.positive {self.positive!r} is not in target.classes")
        return self


class DatasetSchema(_Strict):
    target: TargetSpec
    features: list[FeatureSpec]

    @model_validator(mode="after")
    def _unique_names(self) -> DatasetSchema:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names) or self.target.name in names:
            raise ValueError("feature and target names must be unique")
        return self

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "classification" if self.target.classes is not None else "regression"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [*self.feature_names, self.target.name]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.dtype == "category"]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.dtype in ("float", "int")]

    @property
    def datetimes(self) -> list[str]:
        return [f.name for f in self.features if f.dtype == "datetime"]

    def for_model(self) -> DatasetSchema:
        """The features the model takes: each datetime feature replaced, in place, by its float parts.

        The API and validation work on the schema as written; preprocess writes the parts, and
        train, evaluate and package read them.
        """
        if not self.datetimes:
            return self
        features: list[FeatureSpec] = []
        for spec in self.features:
            if spec.dtype != "datetime":
                features.append(spec)
                continue
            features += [
                FeatureSpec(name=part_name(spec.name, part), dtype="float", nullable=spec.nullable)
                for part in spec.parts
            ]
        return self.model_copy(update={"features": features})

    @property
    def positive_class(self) -> str | None:
        """The class ROC and precision-recall curves are drawn for (binary tasks)."""
        classes = self.target.classes
        if classes is None or len(classes) != 2:
            return None
        return self.target.positive or sorted(classes)[1]


def load_schema(path: Path) -> DatasetSchema:
    if not path.is_file():
        raise ConfigError(
            f"schema file {path} not found: set data.schema in params.yaml, "
            "or create one with `mlcd schema infer <data file>`"
        )
    try:
        return DatasetSchema.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise ConfigError(f"schema file {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = [describe_problem(e, DatasetSchema) for e in exc.errors()]
        raise ConfigError(f"schema file {path} is invalid:", problems) from None


def schema_to_yaml(schema: DatasetSchema) -> str:
    body = schema.model_dump(mode="json", exclude_none=True)
    return str(yaml.safe_dump(body, sort_keys=False))


def infer_task(labels: pd.Series, max_classes: int = MAX_CLASSES) -> Literal["classification", "regression"]:
    """The rule the README states: a number (not a boolean) with more than `max_classes` distinct
    values is a quantity to predict; anything else (text, booleans, a few numeric codes) names classes.
    """
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
    return "regression" if numeric and labels.nunique() > max_classes else "classification"


def describe_task(labels: pd.Series, name: str, task: str) -> str:
    """What `data use` prints about the target, with the way to override the inference."""
    import pandas as pd

    distinct = labels.nunique()
    if task == "regression":
        kind = "integers" if pd.api.types.is_integer_dtype(labels) else "numbers"
        return (
            f"regression target {name!r} ({distinct:,} distinct {kind}); "
            "pass --task classification to override"
        )
    other = " pass --task regression to override" if pd.api.types.is_numeric_dtype(labels) else ""
    return f"classification target {name!r} ({distinct:,} classes);{other}".rstrip(";")


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    max_classes: int = MAX_CLASSES,
    task: Literal["classification", "regression"] | None = None,
) -> DatasetSchema:
    """A starting schema from a data sample: observed types, non-negative bounds, classes.

    A binary target's positive class (what precision, recall, F1 and the curves are
    about) is the less frequent one: in fraud, churn or disease data that is the class
    the model is for, and the majority's F1 would hide a model that misses most of it.
    `task` overrides infer_task's rule.
    """
    import pandas as pd

    if target not in frame.columns:
        raise ConfigError(f"target column {target!r} not in the data; columns: {list(frame)}")
    features = []
    for name in frame.columns.drop(target):
        column = frame[name]
        nullable = bool(column.isna().any())
        if _looks_like_dates(column):
            entry = {"name": str(name), "dtype": "datetime", "nullable": nullable}
            features.append(entry if _times_of_day(column) else {**entry, "time_of_day": False})
            continue
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            features.append({"name": str(name), "dtype": "category", "nullable": nullable})
            continue
        dtype: FeatureType = "int" if pd.api.types.is_integer_dtype(column) else "float"
        lower = 0.0 if column.min() >= 0 else None
        features.append({"name": str(name), "dtype": dtype, "min": lower, "nullable": nullable})
    labels = frame[target].dropna()
    if task is None:
        task = infer_task(labels, max_classes)
    classes = None
    positive = None
    if task == "classification":
        texts = series_labels(labels)
        counts = texts.value_counts()
        classes = sorted(counts.index.tolist())
        if len(classes) == 2:
            positive = min(reversed(classes), key=lambda c: counts[c])  # a tie keeps the sorted second
    body = {"target": {"name": str(target), "classes": classes, "positive": positive}, "features": features}
    try:
        return DatasetSchema.model_validate(body)
    except ValidationError as exc:
        problems = [describe_problem(e, DatasetSchema) for e in exc.errors()]
        raise ConfigError("the data's columns do not make a valid schema:", problems) from None


def _times_of_day(column: pd.Series) -> bool:
    """Whether any value of a date column carries a time of day, as written (not converted to UTC)."""
    import pandas as pd

    present = column.dropna()
    if pd.api.types.is_datetime64_any_dtype(present):
        clock = present.dt.hour + present.dt.minute + present.dt.second + present.dt.microsecond
        return bool((clock != 0).any())
    return any(has_time_of_day(moment) for v in present if (moment := parse(v, local=True)))


def _looks_like_dates(column: pd.Series) -> bool:
    """A datetime column, or text whose every value is an ISO-8601 date or timestamp."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if not (pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)):
        return False
    present = column.dropna()
    if present.empty or not all(isinstance(v, str) and len(v) >= 10 for v in present.head(1000)):
        return False
    return all(parse(v) is not None for v in present)
