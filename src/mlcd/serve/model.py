"""The bundle's ONNX model, loaded once and called with validated feature arrays."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mlcd.bundle import MATRIX_INPUT, BundleFeature, open_bundle
from mlcd.config import FLOAT32_MAX
from mlcd.errors import BundleError


class NonFiniteAnswerError(Exception):
    """The model's answer for these rows (0-based) is NaN or infinite: never sent as a prediction."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"no finite answer for rows {rows[:10]}")
        self.rows = rows


@dataclass(frozen=True)
class Feature:
    """One input as the API takes it: `name` is the user's column name, `onnx_name` the model's input.

    A number takes one column of the float matrix; a datetime (`parts` set) one per part
    (datetimes.PARTS); text goes to the model as a string input of its own.
    """

    name: str
    numeric: bool
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    # What a missing text value becomes: the level preprocess gave missing categories in training.
    missing_text: str | None = None
    onnx_name: str = ""  # skl2onnx's sanitised input name; "" when it is `name`
    categories: frozenset[str] = frozenset()  # text features: every level seen in training
    parts: tuple[str, ...] = ()  # datetime features: the derived inputs, in order
    onnx_names: tuple[str, ...] = ()  # datetime features in per-column models: one input per part

    @property
    def input_name(self) -> str:
        return self.onnx_name or self.name

    @property
    def is_datetime(self) -> bool:
        return bool(self.parts)

    @property
    def is_text(self) -> bool:
        return not self.numeric and not self.parts

    @property
    def width(self) -> int:
        """Columns of the float matrix this feature fills."""
        return len(self.parts) if self.parts else int(self.numeric)

    @property
    def may_be_missing(self) -> bool:
        return self.nullable and (not self.is_text or self.missing_text is not None)

    @classmethod
    def from_schema(cls, entry: BundleFeature, missing_category: str | None) -> Feature:
        return cls(
            name=entry.name,
            numeric=entry.numeric,
            low=entry.min,
            high=entry.max,
            nullable=entry.nullable,
            missing_text=missing_category if entry.dtype == "category" else None,
            onnx_name=entry.onnx_name or "",
            categories=frozenset(entry.categories or ()),
            parts=tuple(entry.parts or ()),
            onnx_names=tuple(entry.onnx_names or ()),
        )


@dataclass(frozen=True)
class Layout:
    """The features in the order of the float matrix, with what the all-numbers fast path needs."""

    features: tuple[Feature, ...]

    @cached_property
    def only_numbers(self) -> bool:
        return all(f.numeric for f in self.features)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property
    def values_of(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """A record's values in feature order (operator.itemgetter: a KeyError for a missing one)."""
        getter: Callable[[Mapping[str, Any]], Any] = itemgetter(*self.names)
        return getter if len(self.names) > 1 else lambda record: (getter(record),)

    @cached_property
    def width(self) -> int:
        return sum(f.width for f in self.features)

    @cached_property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """Each feature's lowest and highest accepted value: its schema bounds, within float32's range."""
        return tuple(
            (
                max(-FLOAT32_MAX, f.low if f.low is not None else -math.inf),
                min(FLOAT32_MAX, f.high if f.high is not None else math.inf),
            )
            for f in self.features
        )

    @cached_property
    def known_texts(self) -> tuple[Feature, ...]:
        """Text features with their training levels: the ones an unseen value can be counted for."""
        return tuple(f for f in self.features if f.is_text and f.categories)


class BundleModel:
    """A verified bundle: its manifest, input schema and an onnxruntime session."""

    def __init__(self, bundle: Path, threads: int = 1) -> None:
        opened = open_bundle(bundle)  # refuse tampered files before loading any
        self.manifest, self.schema, self.examples = opened.manifest, opened.schema, opened.examples
        self.reference = opened.reference
        missing_category = self.schema.missing_category
        self.features = [Feature.from_schema(f, missing_category) for f in self.schema.features]
        self.layout = Layout(tuple(self.features))
        self.classes = opened.classes
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                opened.model_file.read_bytes(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own classes, with protobuf's message
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(
                f"{opened.model_file} is not a model onnxruntime can load ({first}); "
                "rebuild the bundle with `dvc repro package`"
            ) from None
        self.matrix_input = self.schema.onnx_input == "matrix"
        self.output_names = [output.name for output in self.session.get_outputs()]  # once, not per call
        # The session's compiled run, without the Python wrapper's checks of each call's feed (every
        # input there, no device values, no WebGPU capture): feeds() builds every input by construction
        # and the start-up check runs the examples through it. 2 µs of a /predict's ~45. The public
        # run where a later onnxruntime has no `_sess` (tests/serve/test_protocol_fence.py watches it).
        compiled = getattr(self.session, "_sess", None)
        self._run = compiled.run if compiled is not None else self.session.run
        self.is_classifier = self.schema.is_classifier
        # The model's label output as text, one string object per class for the server's life: the
        # closed loop keeps each answer's labels past its request (serve/handoff.py), and a string
        # made per request and kept that long slowed the request path's allocator (issue 25).
        self._label_texts: dict[Any, str] = {}

    @property
    def model_hash(self) -> str:
        return self.manifest.model_hash

    def feeds(self, numbers: np.ndarray, texts: dict[str, list[str]]) -> dict[str, np.ndarray]:
        """ONNX inputs: the whole float32 matrix, or one [n, 1] column per feature."""
        if self.matrix_input:
            return {MATRIX_INPUT: numbers}
        feeds: dict[str, np.ndarray] = {}
        column = 0
        for feature in self.features:
            if feature.is_text:
                feeds[feature.input_name] = np.array(texts[feature.name], dtype=object).reshape(-1, 1)
                continue
            for name in feature.onnx_names or (feature.input_name,):
                feeds[name] = np.ascontiguousarray(numbers[:, column : column + 1])
                column += 1
        return feeds

    def unseen(self, texts: dict[str, list[str]]) -> dict[str, int]:
        """How many values of each text feature training never saw (a missing value is not one)."""
        counts = {}
        for feature in self.layout.known_texts:
            known, missing = feature.categories, feature.missing_text
            if n := sum(value not in known and value != missing for value in texts[feature.name]):
                counts[feature.name] = n
        return counts

    def predict(self, numbers: np.ndarray, texts: dict[str, list[str]]) -> dict[str, Any]:
        """Labels and probabilities (or predictions); NonFiniteAnswerError rather than a NaN or infinity."""
        return self.answer(numbers, texts)[0]

    def answer(self, numbers: np.ndarray, texts: dict[str, list[str]]) -> tuple[dict[str, Any], np.ndarray]:
        """predict()'s answer, and the model's output matrix it came from (a probability per class in
        `classes` order, or one column of predictions): the closed loop keeps the matrix, which the
        garbage collector never walks, rather than the answer's lists and dicts (serve/handoff.py)."""
        outputs = self._run(self.output_names, self.feeds(numbers, texts), None)
        values = outputs[-1]
        rows = values.reshape(len(values), -1).tolist()
        # The model computes in float32, so no sum of its finite answers reaches float64's infinity:
        # the sum is finite exactly when every answer is (cheaper than numpy for a record or a few).
        if not math.isfinite(sum(chain.from_iterable(rows))):
            raise NonFiniteAnswerError([i for i, row in enumerate(rows) if not all(map(math.isfinite, row))])
        if not self.is_classifier:
            return {"predictions": [row[0] for row in rows]}, values
        result = {
            "labels": self._labels(outputs[0].tolist()),
            "probabilities": [dict(zip(self.classes, row, strict=True)) for row in rows],
        }
        return result, values

    def _labels(self, raw: list[Any]) -> list[str]:
        texts = self._label_texts
        try:
            return [texts[label] for label in raw]
        except KeyError:  # a class seen for the first time (bounded: the model's own classes)
            for label in raw:
                texts.setdefault(label, sys.intern(str(label)))
            return [texts[label] for label in raw]
