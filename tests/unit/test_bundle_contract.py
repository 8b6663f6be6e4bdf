"""The bundle contract (bundle.py): what package writes opens as typed models, older bundles still
open, and a bundle this mlcd cannot read is refused in one line naming the mlcd that wrote it."""

import json

import pytest

from mlcd.bundle import BUNDLE_FORMAT, MANIFEST, SCHEMA_FILE, open_bundle
from mlcd.errors import BundleError

from ..helpers import rewritten_bundle


@pytest.fixture
def bundle(built_project):
    from mlcd.config import ProjectPaths

    return ProjectPaths(built_project).bundle


def test_package_writes_the_contract_and_every_field_reads_back(bundle):
    opened = open_bundle(bundle)
    raw = json.loads((bundle / MANIFEST).read_text())
    assert opened.manifest.format == raw["format"] == BUNDLE_FORMAT
    assert opened.model_hash == raw["model_hash"] == opened.manifest.files["model.onnx"]
    assert opened.manifest.params == raw["params"] and opened.manifest.metrics == raw["metrics"]
    assert opened.classes == ["benign", "malignant"] and opened.schema.positive_class == "malignant"
    assert [f.name for f in opened.schema.features] == [
        f["name"] for f in json.loads((bundle / SCHEMA_FILE).read_text())["features"]
    ]
    assert len(opened.examples.records) == len(opened.examples.labels or []) > 0


def test_a_bundle_from_before_the_contract_opens_with_its_defaults(bundle, tmp_path):
    def as_written_before(files):
        for key in ("format", "artifact", "estimator", "versions"):
            del files[MANIFEST][key]
        for key in ("classes", "onnx_input", "class_balance"):
            files[SCHEMA_FILE].pop(key, None)
        files[SCHEMA_FILE]["target"]["classes"] = ["malignant", "benign"]  # the schema's own order

    opened = open_bundle(rewritten_bundle(bundle, tmp_path / "old", as_written_before))
    assert opened.manifest.format == 1 and opened.manifest.artifact == "model"
    assert opened.classes == ["benign", "malignant"]  # sorted, as scikit-learn orders string labels
    assert opened.schema.onnx_input == "columns"


def test_a_newer_format_is_refused_naming_the_version_that_wrote_it(bundle, tmp_path):
    def from_the_future(files):
        files[MANIFEST]["format"] = BUNDLE_FORMAT + 1
        files[MANIFEST]["versions"]["mlcd"] = "9.0.0"

    future = rewritten_bundle(bundle, tmp_path / "future", from_the_future)
    with pytest.raises(BundleError) as caught:
        open_bundle(future)
    message = str(caught.value)
    assert "\n" not in message and "mlcd 9.0.0" in message and f"format {BUNDLE_FORMAT + 1}" in message
    assert "upgrade mlcd" in message


def test_a_bundle_that_does_not_fit_is_refused_in_one_line(bundle, tmp_path):
    def mangled(files):
        files[SCHEMA_FILE]["features"][0]["dtype"] = "complex"
        files[MANIFEST]["versions"]["mlcd"] = "0.0.1"

    with pytest.raises(BundleError) as caught:
        open_bundle(rewritten_bundle(bundle, tmp_path / "bad", mangled))
    message = str(caught.value)
    assert "\n" not in message and "mlcd 0.0.1" in message and "features.0.dtype" in message
