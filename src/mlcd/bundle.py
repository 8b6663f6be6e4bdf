"""Reading a model bundle safely: every file must match the sha256 its manifest records.

Used wherever a bundle is trusted (restore, serving); imports nothing from the
training stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlcd.errors import BundleError
from mlcd.files import sha256_file

# The bundle's files: the manifest records the sha256 of each of BUNDLE_FILES.
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
SCHEMA_FILE = "schema.json"
EXAMPLES_FILE = "examples.json"
BUNDLE_FILES = (MODEL_FILE, SCHEMA_FILE, EXAMPLES_FILE)


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} has no {MANIFEST}: it is not a model bundle (run `dvc repro package`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path} lists no files; rebuild the bundle with `dvc repro package`")
    return manifest


def verify_bundle(bundle: Path) -> dict[str, Any]:
    """Return the manifest if every listed file is present with its recorded sha256."""
    manifest = read_manifest(bundle)
    problems = []
    for name, expected in sorted(manifest["files"].items()):
        path = bundle / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{name}: sha256 {actual[:12]}..., manifest says {expected[:12]}...")
    model_hash = manifest.get("model_hash")
    if model_hash != manifest["files"].get(MODEL_FILE):
        # The hash /ready reports and deploys compare: it must be the file that is served.
        problems.append(
            f"model_hash {str(model_hash)[:12]}... is not the sha256 the manifest lists for {MODEL_FILE}"
        )
    if problems:
        raise BundleError(
            f"bundle {bundle} does not match its manifest; it was changed or damaged after "
            "packaging. `mlcd restore HEAD` puts back verified copies (it md5-checks the DVC cache, "
            "replaces damaged cache copies from the remote, and keeps HEAD on its branch); without a "
            "good copy anywhere, `dvc repro --force package` rebuilds it:",
            problems,
        )
    return manifest


def read_bundle_json(bundle: Path, name: str) -> dict[str, Any]:
    """One of the bundle's JSON files (SCHEMA_FILE, EXAMPLES_FILE); verify_bundle first to trust it."""
    path = bundle / name
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle} has no {name}; rebuild the bundle with `dvc repro package`") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BundleError(f"{path} is not a JSON object; rebuild the bundle with `dvc repro package`")
    return value


def output_classes(schema: dict[str, Any]) -> list[str]:
    """The label of each probability column the model returns, in the model's order ([] for regression).

    Package records them from the fitted model, so answers are labelled right whatever order
    the dataset schema lists its classes in. Bundles made before that carry only the schema's
    target.classes; scikit-learn orders string labels sorted, as here.
    """
    if schema.get("task") != "classification":
        return []
    if "classes" in schema:
        return [str(c) for c in schema["classes"]]
    return sorted(str(c) for c in schema["target"].get("classes") or [])


def as_examples(answer: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """An API answer in the form examples.json stores answers: probabilities as rows in class order."""
    if "labels" not in answer:
        return {"predictions": answer["predictions"]}
    rows = [[row[c] for c in classes] for row in answer["probabilities"]]
    return {"labels": answer["labels"], "probabilities": rows}


def answers_match(
    answer: dict[str, Any], examples: dict[str, Any], classes: list[str], tol: float = 1e-6
) -> bool:
    """Whether an API answer to the bundle's example records equals the answers stored beside them."""
    if "labels" in examples:
        if answer.get("labels") != examples["labels"]:
            return False
        try:
            got = [[row[c] for c in classes] for row in answer.get("probabilities", [])]
        except (KeyError, TypeError):  # not the API's {class: probability} rows
            return False
        want = examples["probabilities"]
    else:
        got, want = [answer.get("predictions", [])], [examples["predictions"]]
    if len(got) != len(want):
        return False
    return all(
        len(g) == len(w) and all(abs(a - b) <= tol * max(1.0, abs(b)) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )
