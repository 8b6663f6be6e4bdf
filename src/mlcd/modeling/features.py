"""Feature preparation shared by every estimator: impute, scale, one-hot."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcd.data.schema import DatasetSchema


def single_matrix(schema: DatasetSchema) -> bool:
    """Whether the model takes all features as one float matrix (no text features)."""
    return not schema.categorical


def build_preprocessor(
    schema: DatasetSchema, scale: bool, dense: bool = False, impute: bool = True
) -> ColumnTransformer:
    """Column-wise preparation that skl2onnx can export feature by feature.

    Trees skip scaling: it changes nothing for them, and keeping raw values lets
    the float32 ONNX trees split on exactly the thresholds scikit-learn learned.
    Imputation is there only when the schema lets a numeric feature be missing:
    validation has ruled missing values out otherwise, and the imputer costs a
    full copy of the data and a median per column. `dense` for estimators that refuse sparse
    input (histogram gradient boosting): one-hot columns of many levels are otherwise sparse.
    `impute=False` for a model that learns where a missing value goes (XGBoost): the median would only
    hide that a value was missing, and it cannot be computed partition by partition.
    """
    numeric_steps: list[tuple[str, object]] = []
    if impute and any(f.nullable for f in schema.features if f.dtype != "category"):
        numeric_steps.append(("impute", SimpleImputer(strategy="median")))
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    numeric: object = Pipeline(numeric_steps) if numeric_steps else "passthrough"
    # All-numeric data selects columns by position, so the ONNX export can take one
    # [n, k] matrix (about three times faster to run than one input per feature).
    columns: list[str] | list[int] = (
        list(range(len(schema.numeric))) if single_matrix(schema) else schema.numeric
    )
    parts: list[tuple[str, object, list[str] | list[int]]] = [("numeric", numeric, columns)]
    if schema.categorical:
        # Missing categories were made a level of their own in preprocess.
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), schema.categorical))
    return ColumnTransformer(
        parts, remainder="drop", verbose_feature_names_out=False, sparse_threshold=0.0 if dense else 0.3
    )
