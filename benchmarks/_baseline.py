"""The bare baseline for benchmarks/pipeline.py: what the pipeline does, with nothing around it.

Reads the same raw Parquet, splits the same way, fits the same pipeline as train
does for this schema (scaling and logistic regression; no imputer, as no feature
may be missing), predicts the test set and computes the same metrics. No
validation, files, plots or ONNX.
"""

import sys

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

frame = pd.read_parquet(sys.argv[1])
y = frame.pop("diagnosis").to_numpy()
x_train, x_test, y_train, y_test = train_test_split(frame, y, test_size=0.2, random_state=42, stratify=y)
model = Pipeline(
    [
        ("features", ColumnTransformer([("numeric", StandardScaler(), list(frame.columns))])),
        ("model", LogisticRegression(max_iter=1000, random_state=42)),
    ]
).fit(x_train, y_train)
predicted = model.predict(x_test)
proba = model.predict_proba(x_test)[:, list(model.classes_).index("malignant")]
scores = {
    "accuracy": metrics.accuracy_score(y_test, predicted),
    "f1": metrics.f1_score(y_test, predicted, pos_label="malignant"),
    "roc_auc": metrics.roc_auc_score(y_test == "malignant", proba),
    "log_loss": metrics.log_loss(y_test, model.predict_proba(x_test), labels=model.classes_),
}
print({k: round(float(v), 4) for k, v in scores.items()}, np.mean(predicted == y_test))
