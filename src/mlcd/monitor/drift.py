"""Drift of one feature (or the predictions) between the training split and a window of served
records: the method, its score and its verdict, following Evidently's documented defaults.

Evidently picks a method by the reference's size and the feature's kind:
- a reference of at most SMALL_REFERENCE rows: a numeric feature with more than FEW_VALUES
  distinct values gets the two-sample Kolmogorov-Smirnov test; a categorical one (text, or
  numbers with at most FEW_VALUES values) chi-squared, or the two-proportion z-test when it has
  at most two values. Drift when the p-value is below 0.05.
- a larger reference: the Wasserstein distance normed by the reference's standard deviation for
  numbers, the Jensen-Shannon distance for categories. Drift when the distance is 0.1 or more.
scipy computes every statistic (`monitor` needs it; the serving image without it serves with
drift off). Only numbers and categories are compared here: a datetime feature is not.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from mlcd.bundle import PREDICTION, Reference
from mlcd.config import DriftMethod

P_VALUE_METHODS: frozenset[str] = frozenset({"ks", "chisquare", "z"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
}
SMALL_REFERENCE = 1000
FEW_VALUES = 5
# Evidently's stand-in for an empty bin's share, so a distance stays finite.
EMPTY_SHARE = 1e-4
# Evidently's floor for the reference's standard deviation in the normed Wasserstein distance.
LEAST_STD = 1e-3


def default_method(reference_rows: int, unique: int, categorical: bool) -> DriftMethod:
    if not categorical and unique > FEW_VALUES:
        return "ks" if reference_rows <= SMALL_REFERENCE else "wasserstein"
    if reference_rows <= SMALL_REFERENCE:
        return "z" if unique <= 2 else "chisquare"
    return "jensenshannon"


def is_drifted(method: str, score: float, threshold: float) -> bool:
    """A p-value below the threshold, or a distance at or above it."""
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


def counts(values: Sequence[Hashable] | np.ndarray) -> dict[Hashable, int]:
    """How often each value occurs (missing numbers left out)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        array = array[~np.isnan(array)]
    levels, numbers = np.unique(array, return_counts=True)
    return {
        level.item() if hasattr(level, "item") else level: int(n)
        for level, n in zip(levels, numbers, strict=True)
    }


def numeric_score(method: str, reference: np.ndarray, current: np.ndarray) -> float:
    """The score of two samples of numbers (missing values dropped)."""
    import scipy.stats
    from scipy.spatial import distance

    reference = reference[~np.isnan(reference)]
    current = current[~np.isnan(current)]
    if method == "ks":
        return float(_ks_2samp()(reference, current).pvalue)
    if method == "wasserstein":
        return float(scipy.stats.wasserstein_distance(reference, current) / max(np.std(reference), LEAST_STD))
    if method == "jensenshannon":
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        shares = [_nonzero(np.histogram(side, edges)[0] / len(side)) for side in (reference, current)]
        return float(distance.jensenshannon(*shares))
    return categorical_score(method, counts(reference), counts(current))


@functools.cache
def _ks_2samp() -> Callable[[np.ndarray, np.ndarray], Any]:
    """scipy's ks_2samp without its wrappers for axes, NaN and renamed arguments (inspect.unwrap):
    the samples here are 1-D and without NaN already, and the wrappers took about half of each
    call, 6 ms of the 22 a server spends every interval on 30 features (2026-12-06). The same
    statistic and p-value (tests/serve/test_drift.py holds them to the public function's)."""
    import scipy.stats

    return cast(Callable[[np.ndarray, np.ndarray], Any], inspect.unwrap(scipy.stats.ks_2samp))


def categorical_score(method: str, reference: Mapping[Any, int], current: Mapping[Any, int]) -> float:
    """The score of two tables of counts by level (a level missing from one side counts 0 there)."""
    import scipy.stats
    from scipy.spatial import distance

    levels = sorted(set(reference) | set(current), key=str)
    ref = np.array([reference.get(level, 0) for level in levels], dtype=float)
    cur = np.array([current.get(level, 0) for level in levels], dtype=float)
    if method == "chisquare":
        with np.errstate(divide="ignore", invalid="ignore"):  # a level training never saw: p = 0
            return float(scipy.stats.chisquare(cur, ref * cur.sum() / ref.sum()).pvalue)
    if method == "z":
        if len(levels) == 1:
            return 1.0  # one value on both sides: nothing moved
        n_ref, n_cur = ref.sum(), cur.sum()
        p_ref, p_cur = ref[0] / n_ref, cur[0] / n_cur
        pooled = (ref[0] + cur[0]) / (n_ref + n_cur)
        spread = np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
        return float(2 * scipy.stats.norm.sf(abs((p_ref - p_cur) / spread)))
    if method == "jensenshannon":
        return float(distance.jensenshannon(_nonzero(ref / ref.sum()), _nonzero(cur / cur.sum())))
    raise ValueError(f"{method} does not compare categories")  # ks and wasserstein need numbers


def scores(
    reference: Reference,
    numbers: np.ndarray,
    numeric_names: list[str],
    texts: dict[str, list[str]],
    answers: list[Any],
) -> dict[str, tuple[str, float, bool]]:
    """(method, score, drifted) per watched feature and for PREDICTION."""
    found: dict[str, tuple[str, float, bool]] = {}
    for index, name in enumerate(numeric_names):
        test = reference.tests[name]
        sample = np.asarray(reference.numeric[name].sample, dtype=np.float64)
        score = numeric_score(test.method, sample, numbers[:, index].astype(np.float64))
        found[name] = (test.method, score, is_drifted(test.method, score, test.threshold))
    for name, values in texts.items():
        test = reference.tests[name]
        score = categorical_score(test.method, reference.categorical[name], counts(values))
        found[name] = (test.method, score, is_drifted(test.method, score, test.threshold))
    test = reference.tests[PREDICTION]
    if reference.predicted_labels is not None:
        score = categorical_score(test.method, reference.predicted_labels, counts(answers))
    else:
        predicted = np.asarray(reference.predicted_values or [], dtype=np.float64)
        score = numeric_score(test.method, predicted, np.asarray(answers, dtype=np.float64))
    found[PREDICTION] = (test.method, score, is_drifted(test.method, score, test.threshold))
    return found


def _nonzero(shares: np.ndarray) -> np.ndarray:
    return np.where(shares == 0, EMPTY_SHARE, shares)
