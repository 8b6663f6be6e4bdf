"""Performance before labels arrive: confidence-based performance estimation (CBPE), as NannyML
documents it, for a binary classifier.

If the model's probabilities are calibrated, a record answered positive with calibrated
probability c is right with probability c, and one answered negative with probability 1 - c.
The expected confusion matrix of a window of answers follows, and from it the accuracy and F1
the labels would show. The calibration (bundle.Calibration) is isotonic regression fitted by
package on out-of-fold probabilities of the training split (modeling/reference.py), so an
overconfident model's probabilities are mapped to how often it was right on rows it had not seen.
Only numpy here: the serving image has no scikit-learn.
"""

from __future__ import annotations

import numpy as np

from mlcd.bundle import Calibration


def calibrated(calibration: Calibration, probabilities: np.ndarray) -> np.ndarray:
    """The positive class's calibrated probability (clipped to the curve's ends, as fitted)."""
    curve: np.ndarray = np.interp(probabilities, calibration.probabilities, calibration.rates)
    return curve


def estimate(calibrated_positive: np.ndarray, answered_positive: np.ndarray) -> dict[str, float]:
    """Expected accuracy and F1 of the positive class over these answers; {} for none."""
    if not len(calibrated_positive):
        return {}
    c = calibrated_positive.astype(np.float64)
    said = answered_positive.astype(bool)
    true_positive = float(np.sum(c[said]))
    false_positive = float(np.sum(1.0 - c[said]))
    false_negative = float(np.sum(c[~said]))
    right = true_positive + float(np.sum(1.0 - c[~said]))
    values = {"accuracy": right / len(c)}
    denominator = 2 * true_positive + false_positive + false_negative
    values["f1"] = 2 * true_positive / denominator if denominator > 0 else 0.0
    return values
