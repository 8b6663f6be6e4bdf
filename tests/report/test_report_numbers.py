"""How the report writes numbers: never "-0.0000", and a small change with the digits that show it."""

import pytest

from mlcd.report.compare import MetricRow, format_number
from mlcd.report.render import metrics_table


@pytest.mark.parametrize(
    ("value", "spec", "shown"),
    [
        (-0.00001, "+.4f", "-0.000010"),
        (-0.0, "+.4f", "+0.0000"),
        (-0.00004, "+.2%", "-0.0040%"),
        (-0.00003, "+.4f", "-0.000030"),
        (1e-19, "+.4f", "+0.0000"),
        (-0.00006, "+.4f", "-0.0001"),
        (0.25, "+.2%", "+25.00%"),
    ],
)
def test_format_number_shows_a_small_change_with_its_sign(value, spec, shown):
    assert format_number(value, spec) == shown


def test_metrics_table_row_with_a_tiny_drop_shows_a_drop():
    row = MetricRow("roc_auc", 0.987592, 0.987591)
    (line,) = metrics_table([row])[2:]
    assert "| -0.0000010 | -0.00010% | 🔻 worse |" in line


def test_confusion_matrices_share_the_classes_of_both_sides():
    """A head that learned a third class: both panels get the same ticks, counts in the right cells."""
    from mlcd.report.render import confusion_matrices

    base = [{"actual": 0, "predicted": 0}, {"actual": 1, "predicted": 0}]
    head = [{"actual": 2, "predicted": 2}, {"actual": 10, "predicted": 1}]
    matrices, classes = confusion_matrices({"base": {"confusion": base}, "head": {"confusion": head}})
    assert classes == ["0", "1", "2", "10"]
    assert matrices["base"].shape == matrices["head"].shape == (4, 4)
    assert matrices["base"][1, 0] == 1 and matrices["base"].sum() == 2
    assert matrices["head"][2, 2] == 1 and matrices["head"][3, 1] == 1


def test_the_report_lists_the_heads_data_warnings_and_marks_the_new_ones():
    from mlcd.report.render import markdown
    from mlcd.report.sides import Side

    old = "column 'ID' is unique on 645 of 699 rows, like an ID: ..."
    new = "column 'hoursw' alone explains 99.6% of the target in training: likely a leak ..."
    base = Side("base", "a" * 40, profile={"warnings": [old]})
    head = Side("head", None, profile={"warnings": [old, new]})
    text = markdown(base, head, "workspace", "--base", [], [], [], None, {})
    assert f"#### Data warnings\n\n- {old}\n- **new** {new}\n" in text
    quiet = markdown(
        base, Side("head", None, profile={"warnings": []}), "workspace", "--base", [], [], [], None, {}
    )
    assert "Data warnings" not in quiet
