"""The check a bundle passes before it serves, run by the server at start-up and by `package`.

It sends the bundle's example records through the same parsing as /predict and
requires the stored answers back, each label the name of its largest probability.
Package runs it on the bundle it is about to write, so `dvc repro` never reports
success for a bundle `mlcd serve` would refuse.
"""

from __future__ import annotations

from typing import Any

from mlcd.bundle import answers_match
from mlcd.errors import BundleError
from mlcd.serve.asgi import PayloadError
from mlcd.serve.model import BundleModel, NonFiniteAnswerError
from mlcd.serve.payload import to_batch


def mislabelled(answer: dict[str, Any]) -> list[int]:
    """Rows whose label is not the class with the largest probability (names, not positions)."""
    rows = answer.get("probabilities", [])
    return [
        index
        for index, (label, row) in enumerate(zip(answer.get("labels", []), rows, strict=True))
        if row and label != max(row, key=row.__getitem__)
    ]


def self_check(model: BundleModel) -> None:
    """Refuse to serve a model that does not reproduce, with correct names, the answers in its bundle."""
    examples = model.examples
    records = examples.records
    try:
        batch = to_batch(records, model.layout, max(1, len(records)))
    except PayloadError as exc:
        raise BundleError(f"the bundle's example records do not fit its own schema: {exc.detail}") from None
    try:
        answer = model.predict(batch.numbers, batch.texts)
    except NonFiniteAnswerError as exc:
        raise BundleError(f"the model answers its own examples with NaN or infinity ({exc})") from None
    if not answers_match(answer, examples, model.classes):
        raise BundleError("the model does not reproduce the example answers stored in its bundle; rebuild it")
    if wrong := mislabelled(answer):
        raise BundleError(
            f"the bundle labels example rows {wrong} with a class that is not their most probable one: "
            "its class names do not match the model's probability columns; "
            "rebuild it with `dvc repro package`"
        )
