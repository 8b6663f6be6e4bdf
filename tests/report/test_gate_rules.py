"""The gate's metric rules per task, on metrics as evaluate writes them (no repo, no pipeline)."""

from __future__ import annotations

from mlcd.config import GateParams
from mlcd.report.compare import gate, metric_rows
from mlcd.report.render import markdown
from mlcd.report.sides import Side

REGRESSION = {"mse": 2900.0, "rmse": 53.9, "mae": 42.0, "r2": 0.45}


def sides(base: dict[str, float], head: dict[str, float]) -> tuple[Side, Side]:
    return Side("base", "a" * 40, metrics=base), Side("head", "b" * 40, metrics=head)


def test_a_regression_is_held_to_r2_when_max_drop_names_only_classification_metrics():
    base, head = sides(REGRESSION, {**REGRESSION, "r2": 0.40})
    rules = [r for r in gate(metric_rows(base, head), base, head, GateParams()) if r.on_metric]
    assert [r.name.split()[0] for r in rules] == ["r2"]
    assert rules[0].passed is False and "regression default" in rules[0].name
    base, head = sides(REGRESSION, {**REGRESSION, "r2": 0.44})
    assert all(r.passed for r in gate(metric_rows(base, head), base, head, GateParams()) if r.on_metric)


def test_named_rules_win_over_the_task_defaults():
    base, head = sides(REGRESSION, {**REGRESSION, "mae": 50.0, "r2": 0.10})
    rules = gate(metric_rows(base, head), base, head, GateParams(max_drop={"mae": 10.0}))
    assert [(r.name.split()[0], r.passed) for r in rules if r.on_metric] == [("mae", True)]


def test_a_gate_that_checks_no_metric_says_so_instead_of_passed():
    base, head = sides({}, {})
    rows = metric_rows(base, head)
    rules = gate(rows, base, head, GateParams())
    assert not [r for r in rules if r.on_metric and r.passed is not None]
    text = markdown(base, head, "HEAD", "a test", rows, [], [], rules, {})
    assert "gate checked no metric" in text and "gate passed" not in text


def test_a_changed_positive_class_is_said_not_drawn_as_a_collapse():
    from mlcd.report.sides import set_aside_other_positive_class

    binary = {
        "accuracy": 0.98,
        "balanced_accuracy": 0.77,
        "f1": 0.99,
        "roc_auc": 0.9,
        "average_precision": 0.95,
    }
    base, head = sides(binary, {**binary, "f1": 0.66, "average_precision": 0.70})
    base.positive_class, head.positive_class = "ok", "fraud"
    curve = [{"fpr": 0.0, "tpr": 0.0, "threshold": 1.0}, {"fpr": 1.0, "tpr": 1.0, "threshold": 0.0}]
    base.plots = {"roc": curve, "confusion": []}
    note = set_aside_other_positive_class(base, head)
    assert note and "changed from 'ok' (base) to 'fraud' (head)" in note
    assert "roc" not in base.plots and "confusion" in base.plots
    rows = metric_rows(base, head)
    rules = {r.name.split()[0]: r for r in gate(rows, base, head, GateParams()) if r.on_metric}
    assert rules["f1"].passed is None and rules["accuracy"].passed is True
    text = markdown(base, head, "HEAD", "a test", rows, [], [], list(rules.values()), {})
    assert "positive class changed" in text and "gate failed" not in text
    same = sides(binary, binary)
    same[0].positive_class = same[1].positive_class = "fraud"
    assert set_aside_other_positive_class(*same) is None and same[0].metrics == binary


def test_the_searchs_winner_is_in_the_report_beside_bases():
    base, head = sides({}, {})
    found = {"kind": "grid", "candidates": 6, "folds": 3, "scoring": "roc_auc", "best_score": 0.9912}
    head.search = {**found, "best": {"C": 0.1, "max_iter": 300}}
    base.search = {**found, "best": {"C": 1.0, "max_iter": 300}, "best_score": 0.9901}
    text = markdown(base, head, "HEAD", "a test", metric_rows(base, head), [], [], None, {})
    assert "### Hyperparameter search" in text
    assert (
        "grid search over 6 candidates (3-fold roc_auc): best `C=0.1`, `max_iter=300`, score 0.9912" in text
    )
    assert "base's best `C=1.0`, `max_iter=300`, score 0.9901" in text
    head.search = {"kind": "none"}
    assert "Hyperparameter search" not in markdown(base, head, "HEAD", "a test", [], [], [], None, {})
