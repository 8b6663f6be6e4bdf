"""train.estimator: xgboost. XGBoost's scikit-learn estimators, fitted as reproducibly as the others,
and their ONNX converters (onnxmltools') registered with skl2onnx for package.

Imported only when a team picks xgboost (the `xgboost` extra): the other estimators never load it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight

from mlcd.config import TrainParams

# Histogram trees on one thread: the model's bytes are then the same on any machine's core count
# (measured equal on 1 and 2 threads too, but one thread is what can be promised).
FIXED = {"tree_method": "hist", "n_jobs": 1}
# The newest version of ONNX's ML operators onnxmltools' XGBoost converters write (TreeEnsemble*).
ML_OPSET = 3


def xgboost_options(params: TrainParams) -> dict[str, Any]:
    """train.xgboost and the seed, as XGBoost's scikit-learn arguments."""
    return {**params.xgboost.model_dump(), "random_state": params.seed}


class LabelledXGBClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """XGBoost's classifier on the data's own labels.

    XGBoost takes classes 0..n-1 only and answers with those; every reader of a model here (evaluate,
    package, the bundle's schema) expects the labels themselves in `classes_`, as scikit-learn's
    estimators give them. So the labels are encoded here, in sorted order as scikit-learn's are, and
    class_weight ("balanced") becomes XGBoost's sample weights."""

    def __init__(
        self,
        n_estimators: int = 100,
        max_depth: int = 6,
        learning_rate: float = 0.3,
        min_child_weight: float = 1.0,
        max_bin: int = 256,
        random_state: int = 0,
        class_weight: str | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.max_bin = max_bin
        self.random_state = random_state
        self.class_weight = class_weight

    def fit(self, x: Any, y: Any) -> LabelledXGBClassifier:
        from xgboost import XGBClassifier

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        weights = compute_sample_weight(self.class_weight, codes) if self.class_weight else None
        options = {name: value for name, value in self.get_params().items() if name != "class_weight"}
        self.booster_ = XGBClassifier(**options, **FIXED)
        self.booster_.fit(x, codes, sample_weight=weights)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.asarray(self.booster_.predict_proba(x))

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(x), axis=1)])


def build_xgboost(params: TrainParams) -> BaseEstimator:
    options = xgboost_options(params)
    if params.task == "regression":
        from xgboost import XGBRegressor

        return XGBRegressor(**options, **FIXED)
    return LabelledXGBClassifier(**options, class_weight=params.class_weight)


class _WithLabels:
    """The fitted XGBoost classifier as onnxmltools' converter reads it, but with the data's labels
    as its classes: the ONNX model then answers with the labels, like every other estimator's."""

    def __init__(self, model: LabelledXGBClassifier) -> None:
        self._model = model
        self.classes_ = model.classes_
        # onnxmltools reads the parameters through get_xgb_params() where this exists, else __dict__.
        self.kwargs = getattr(model.booster_, "kwargs", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model.booster_, name)


def register_onnx_converters() -> None:
    """Teach skl2onnx XGBoost's two estimators (onnxmltools' converters), before package converts."""
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import (
        XGBClassifierConverter,
        convert_xgboost,
    )
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBRegressor

    def convert_classifier(scope: Any, operator: Any, container: Any) -> None:
        operator.raw_operator = _WithLabels(operator.raw_operator)
        XGBClassifierConverter.convert(scope, operator, container)

    update_registered_converter(
        LabelledXGBClassifier,
        "MlcdLabelledXGBClassifier",
        calculate_linear_classifier_output_shapes,
        convert_classifier,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
    )
