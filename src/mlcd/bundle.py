"""The model bundle's contract: typed models of its three JSON files, and one way to open it.

`package` writes a Manifest, a BundleSchema and Examples; every reader (serve, report, tracking,
container smoke, deploy, registry) opens the bundle with `open_bundle` and reads attributes.
Opening verifies every file against the sha256 its manifest records. Imports nothing from the
training stack.

Compatibility: fields are only ever added with defaults, so a bundle written by an older mlcd
reads (its missing fields take the defaults: a bundle without `format` is format 1, one without
`classes` has the schema's target classes, sorted as scikit-learn sorts them). A bundle of a
newer format, or one that does not fit these models at all, is refused in one line naming the
mlcd version that wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mlcd.config import DriftMethod
from mlcd.errors import BundleError
from mlcd.files import sha256_file
from mlcd.tolerance import within

# The bundle's files: the manifest records the sha256 of each of BUNDLE_FILES.
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
SCHEMA_FILE = "schema.json"
EXAMPLES_FILE = "examples.json"
REFERENCE_FILE = "reference.json"  # bundles before the reference profile lack it: drift is off
BUNDLE_FILES = (MODEL_FILE, SCHEMA_FILE, EXAMPLES_FILE, REFERENCE_FILE)

# The format this mlcd writes and the newest it reads; raise it only when an older reader would
# misread a bundle (a new field with a default does not need it).
BUNDLE_FORMAT = 1
# The ONNX model's one float32 input when it takes the features as a matrix (onnx_input "matrix").
MATRIX_INPUT = "features"

Task = Literal["classification", "regression"]
REBUILD = "rebuild it with `dvc repro package`"


class _Part(BaseModel):
    # Fields a newer mlcd adds are ignored here rather than refused: the format number says
    # when a reader must not go on.
    model_config = ConfigDict(frozen=True, extra="ignore")


class BundleFeature(_Part):
    """One API input: the dataset schema's feature, with what training saw of it."""

    name: str
    dtype: Literal["float", "int", "category", "datetime"]
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    time_of_day: bool | None = None
    observed_min: float | None = None  # numbers: the training split's range
    observed_max: float | None = None
    categories: list[str] | None = None  # text: every level of the training split
    parts: list[str] | None = None  # datetimes: the model inputs derived from it (datetimes.PARTS)
    onnx_name: str | None = None  # skl2onnx's sanitised input name, when it differs from `name`
    onnx_names: list[str] | None = None  # datetimes in per-column models: one input per part

    @property
    def numeric(self) -> bool:
        return self.dtype in ("float", "int")


class BundleTarget(_Part):
    name: str
    classes: list[str] | None = None
    positive: str | None = None
    drop_missing: bool = False


class BundleSchema(_Part):
    """schema.json: what the server needs to know to take a request and label an answer."""

    task: Task
    features: list[BundleFeature]
    target: BundleTarget
    positive_class: str | None = None
    class_balance: dict[str, float] | None = None  # the training split's class shares
    onnx_input: Literal["columns", "matrix"] = "columns"
    outputs: list[str] = []
    classes: list[str] | None = None  # each probability column's label, in the model's order
    missing_category: str | None = None  # what a missing text value becomes (preprocess)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    def output_classes(self) -> list[str]:
        """The label of each probability column the model returns, in its order ([] for regression).

        Package records them from the fitted model, so answers are labelled right whatever order
        the dataset schema lists its classes in. Bundles made before that carry only the target's
        classes; scikit-learn orders string labels sorted, as here.
        """
        if not self.is_classifier:
            return []
        if self.classes is not None:
            return list(self.classes)
        return sorted(self.target.classes or [])


class Examples(_Part):
    """examples.json: test records as a client sends them, with this exact model's answers."""

    records: list[dict[str, Any]]
    labels: list[str] | None = None  # classification
    probabilities: list[list[float]] | None = None  # rows in output_classes() order
    predictions: list[float] | None = None  # regression


class DataSummary(_Part):
    sha256: str | None = None
    rows: int | None = None
    test_rows: int | None = None


class Parity(_Part):
    rows: int
    label_mismatches: int
    max_abs_diff: float
    tolerance: float
    target_scale: float | None = None  # regression: what the tolerance is relative to


class DriftTest(_Part):
    """How one feature (or the predictions) is compared with the training split."""

    method: DriftMethod
    threshold: float


class NumericReference(_Part):
    sample: list[float]  # up to monitor.reference_rows training values (missing ones left out)
    quantiles: list[float]  # the training values' deciles, 0 to 1: for panels and reports


class Calibration(_Part):
    """A binary classifier's positive-class probability mapped to how often the positive class is
    true: isotonic regression on out-of-fold probabilities of the training split, as points of a
    piecewise-linear curve. The server estimates accuracy from it before labels arrive."""

    positive: str
    folds: int
    probabilities: list[float]  # increasing
    rates: list[float]  # the observed share of the positive class at each probability


class Reference(_Part):
    """reference.json: the training split as live traffic is compared with it, and how."""

    rows: int  # training rows: decides the default tests, as Evidently does
    window: int
    min_window: int
    interval_seconds: float
    drift_share: float
    numeric: dict[str, NumericReference] = {}
    categorical: dict[str, dict[str, int]] = {}  # text features: training rows per level
    tests: dict[str, DriftTest] = {}  # per feature, and PREDICTION for the model's answers
    predicted_labels: dict[str, int] | None = None  # classifiers: the model's labels on training rows
    predicted_values: list[float] | None = None  # regressors: a sample of its answers on them
    calibration: Calibration | None = None  # binary classifiers, unless monitor.calibration_folds is 0


# The predictions' entry in Reference.tests.
PREDICTION = "prediction"


class Manifest(_Part):
    """manifest.json: the sha256 of every file, and where the model came from."""

    format: int = 1  # bundles written before the format was recorded are format 1
    artifact: str = "model"  # the artifact's name in dvc.yaml: the v2 model name
    model_hash: str  # sha256 of model.onnx: what /ready reports and deploys compare
    files: dict[str, str]
    task: Task
    estimator: str = "unknown"
    data: DataSummary = DataSummary()
    params: dict[str, Any] = {}
    metrics: dict[str, float | None] = {}
    parity: Parity | None = None
    versions: dict[str, str] = {}


@dataclass(frozen=True)
class Bundle:
    """A bundle whose files all match its manifest."""

    path: Path
    manifest: Manifest
    schema: BundleSchema
    examples: Examples
    reference: Reference | None = None  # None: packaged before the reference profile existed

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def model_hash(self) -> str:
        return self.manifest.model_hash

    @property
    def classes(self) -> list[str]:
        return self.schema.output_classes()


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.parent} has no {path.name}: {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); {REBUILD}") from None


def _written_by(versions: Any) -> str:
    """Who wrote a bundle, from its manifest's `versions` (parsed or still raw JSON)."""
    mlcd = versions.get("mlcd") if isinstance(versions, dict) else None
    return f"mlcd {mlcd}" if isinstance(mlcd, str) else "an mlcd that did not record its version"


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], raw: Any, path: Path, written_by: str) -> _Model:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise BundleError(
            f"{path} was written by {written_by} and this mlcd cannot read it "
            f"({where}: {first['msg']}); {REBUILD}"
        ) from None


def read_manifest(bundle: Path) -> Manifest:
    """The manifest, unverified: open_bundle for a bundle to trust."""
    path = bundle / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} has no {MANIFEST}: it is not a model bundle (run `dvc repro package`)")
    raw = _load_json(path, "it is not a model bundle")
    written_by = _written_by(raw.get("versions") if isinstance(raw, dict) else None)
    if isinstance(raw, dict) and isinstance(raw.get("format"), int) and raw["format"] > BUNDLE_FORMAT:
        raise BundleError(
            f"{bundle} is bundle format {raw['format']}, written by {written_by}; this mlcd reads "
            f"formats up to {BUNDLE_FORMAT}: upgrade mlcd, or {REBUILD}"
        )
    return _parse(Manifest, raw, path, written_by)


def verify_files(bundle: Path, manifest: Manifest) -> None:
    """BundleError unless every file the manifest lists is present with its recorded sha256."""
    problems = []
    for name, expected in sorted(manifest.files.items()):
        path = bundle / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{name}: sha256 {actual[:12]}..., manifest says {expected[:12]}...")
    if manifest.model_hash != manifest.files.get(MODEL_FILE):
        # The hash /ready reports and deploys compare: it must be the file that is served.
        problems.append(
            f"model_hash {manifest.model_hash[:12]}... is not the sha256 the manifest lists for {MODEL_FILE}"
        )
    if problems:
        raise BundleError(
            f"bundle {bundle} does not match its manifest; it was changed or damaged after "
            "packaging. `mlcd restore HEAD` puts back verified copies (it md5-checks the DVC cache, "
            "replaces damaged cache copies from the remote, and keeps HEAD on its branch); without a "
            "good copy anywhere, `dvc repro --force package` rebuilds it:",
            problems,
        )


def verify_bundle(bundle: Path) -> Manifest:
    """The manifest, if every listed file is present with its recorded sha256."""
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    return manifest


def open_bundle(bundle: Path) -> Bundle:
    """The verified bundle with its three JSON files read into their models."""
    manifest = verify_bundle(bundle)
    written_by = _written_by(manifest.versions)

    def read(name: str, model: type[_Model]) -> _Model:
        return _parse(model, _load_json(bundle / name, REBUILD), bundle / name, written_by)

    reference = read(REFERENCE_FILE, Reference) if REFERENCE_FILE in manifest.files else None
    return Bundle(bundle, manifest, read(SCHEMA_FILE, BundleSchema), read(EXAMPLES_FILE, Examples), reference)


def as_examples(answer: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """An API answer in the form examples.json stores answers: probabilities as rows in class order."""
    if "labels" not in answer:
        return {"predictions": answer["predictions"]}
    rows = [[row[c] for c in classes] for row in answer["probabilities"]]
    return {"labels": answer["labels"], "probabilities": rows}


def answers_match(answer: dict[str, Any], examples: Examples, classes: list[str], tol: float = 1e-6) -> bool:
    """Whether an API answer to the bundle's example records equals the answers stored beside them."""
    if examples.labels is not None:
        if answer.get("labels") != examples.labels:
            return False
        try:
            got = [[row[c] for c in classes] for row in answer.get("probabilities", [])]
        except (KeyError, TypeError):  # not the API's {class: probability} rows
            return False
        want = examples.probabilities or []
    else:
        got, want = [answer.get("predictions", [])], [examples.predictions or []]
    if len(got) != len(want):
        return False
    return all(
        len(g) == len(w) and all(within(b, a, tol) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )
