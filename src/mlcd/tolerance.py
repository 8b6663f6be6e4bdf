"""The one relative-tolerance rule: a difference counts relative to the reference value's size,
but never relative to less than 1, so values near zero are compared absolutely.

Used where two runs of the same model are held equal: output equivalence (reproducibility/) and
an answer against the bundle's stored examples (bundle.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only where arrays are compared: deploys read bundles without it
    import numpy as np


def relative_difference(reference: float, value: float) -> float:
    return abs(reference - value) / max(1.0, abs(reference))


def relative_differences(reference: np.ndarray, value: np.ndarray) -> np.ndarray:
    """relative_difference element by element."""
    import numpy as np

    differences: np.ndarray = np.abs(reference - value) / np.maximum(1.0, np.abs(reference))
    return differences


def within(reference: float, value: float, tolerance: float) -> bool:
    return relative_difference(reference, value) <= tolerance
