"""One comparison of API answers with a bundle's answers, used by serving, smoke tests and deploys."""

from mlcd.bundle import Examples, answers_match, as_examples


def test_an_api_answer_matches_itself_in_examples_form_and_a_changed_one_does_not():
    classes = ["benign", "malignant"]
    answer = {"labels": ["benign"], "probabilities": [{"malignant": 0.2, "benign": 0.8}]}
    stored = as_examples(answer, classes)
    assert stored == {"labels": ["benign"], "probabilities": [[0.8, 0.2]]}
    stored = Examples(records=[{}], **stored)
    assert answers_match(answer, stored, classes)
    moved = {"labels": ["benign"], "probabilities": [{"malignant": 0.21, "benign": 0.79}]}
    assert not answers_match(moved, stored, classes)
    assert not answers_match(
        {"labels": ["malignant"], **{"probabilities": answer["probabilities"]}}, stored, classes
    )


def test_regression_answers_compare_within_a_relative_tolerance():
    stored = Examples(records=[{}, {}], **as_examples({"predictions": [1000.0, 2.5]}, []))
    assert answers_match({"predictions": [1000.0000001, 2.5]}, stored, [])
    assert not answers_match({"predictions": [1000.1, 2.5]}, stored, [])
    assert not answers_match({"predictions": [1000.0]}, stored, [])
