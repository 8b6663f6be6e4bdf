"""The bundle's ONNX model, loaded once and called with validated feature arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mlcd.bundle import EXAMPLES_FILE, MODEL_FILE, SCHEMA_FILE, read_bundle_json, verify_bundle


@dataclass(frozen=True)
class Feature:
    name: str
    numeric: bool
    low: float | None
    high: float | None


class BundleModel:
    """A verified bundle: its manifest, input schema and an onnxruntime session."""

    def __init__(self, bundle: Path, threads: int = 1) -> None:
        self.manifest = verify_bundle(bundle)  # refuse tampered files before loading any
        self.schema = read_bundle_json(bundle, SCHEMA_FILE)
        self.examples = read_bundle_json(bundle, EXAMPLES_FILE)
        self.features = [
            Feature(f["name"], f["dtype"] != "category", f.get("min"), f.get("max"))
            for f in self.schema["features"]
        ]
        self.names = [f.name for f in self.features]
        self.classes: list[str] = (self.schema["target"].get("classes") or []) if self.is_classifier else []
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            (bundle / MODEL_FILE).read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        self.matrix_input = self.schema.get("onnx_input") == "matrix"

    @property
    def is_classifier(self) -> bool:
        return self.schema["task"] == "classification"

    @property
    def model_hash(self) -> str:
        return self.manifest["model_hash"]

    def feeds(self, numbers: np.ndarray, texts: dict[str, list[str]]) -> dict[str, np.ndarray]:
        """ONNX inputs: the whole float32 matrix, or one [n, 1] column per feature."""
        if self.matrix_input:
            return {"features": numbers}
        feeds: dict[str, np.ndarray] = {}
        column = 0
        for feature in self.features:
            if feature.numeric:
                feeds[feature.name] = np.ascontiguousarray(numbers[:, column : column + 1])
                column += 1
            else:
                feeds[feature.name] = np.array(texts[feature.name], dtype=object).reshape(-1, 1)
        return feeds

    def predict(self, numbers: np.ndarray, texts: dict[str, list[str]]) -> dict[str, Any]:
        outputs = self.session.run(None, self.feeds(numbers, texts))
        if not self.is_classifier:
            return {"predictions": outputs[0].reshape(-1).tolist()}
        labels, proba = outputs
        return {
            "labels": [str(label) for label in labels],
            "probabilities": [dict(zip(self.classes, row, strict=True)) for row in proba.tolist()],
        }
