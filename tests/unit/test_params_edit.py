"""params.yaml edited in place: values change, comments and layout stay, a bad result is refused."""

from __future__ import annotations

import pytest

from mlcd.errors import ConfigError
from mlcd.params_edit import checked_edit, set_values

from ..helpers import PROJECT_ROOT

# The shape of this project's params.yaml, comments included. Not read from the checkout: CI's
# test repos rewrite params.yaml (without comments) before the check job runs the tests.
COMMENTED = """\
# Every stage's settings.
data:
  source: sklearn:breast_cancer  # sklearn:breast_cancer | sklearn:diabetes | synthetic
  schema: data/schemas/breast_cancer.yaml

train:
  task: classification           # classification | regression
  estimator: logistic_regression # logistic_regression | ridge (regression)
  # regularisation of the linear models
  ridge:
    alpha: 1.0
  cv_folds: 5                    # 0 turns cross-validation off
"""


def test_values_change_and_every_comment_stays():
    text = COMMENTED
    edited = set_values(
        text,
        {"data.source": "data/external/my table.csv", "train.task": "regression", "train.ridge.alpha": 2.5},
    )
    comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    assert all(comment in edited for comment in comments)
    assert "  source: data/external/my table.csv  # sklearn:breast_cancer" in edited
    assert "  task: regression           # classification | regression" in edited
    assert "    alpha: 2.5" in edited
    assert len(edited.splitlines()) == len(text.splitlines())


def test_a_key_that_is_not_there_is_refused():
    with pytest.raises(ConfigError, match=r"params\.yaml has no key train\.nonsense"):
        set_values("train:\n  task: classification\n", {"train.nonsense": 1})


def test_a_result_that_does_not_validate_leaves_the_file_alone(tmp_path):
    path = tmp_path / "params.yaml"
    original = (PROJECT_ROOT / "params.yaml").read_text()
    path.write_text(original)
    with pytest.raises(ConfigError, match="does not fit task 'regression'"):
        checked_edit(path, {"train.task": "regression"})  # logistic regression cannot regress
    assert path.read_text() == original
