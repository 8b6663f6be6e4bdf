"""params.yaml as typed config, and every project path in one place.

`load_params` is the only reader of params.yaml: commands call it once and pass
the sections down. Unknown keys, wrong types and out-of-range values are all
reported together, each naming its dotted key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from mlcd.errors import ConfigError

PARAMS_FILE = "params.yaml"
LOCK_FILE = "dvc.lock"
BUILTIN_SOURCES = ("sklearn:breast_cancer", "sklearn:diabetes", "synthetic")
FILE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq")
# A data.source read as a set of Parquet files: an object-store prefix, or a folder (written with a final /).
S3_SCHEME = "s3://"
# The largest float32 (numpy.finfo(numpy.float32).max): train reads features as float32 and the
# ONNX model computes in it, so validation and the API refuse values beyond it.
FLOAT32_MAX = 3.4028234663852886e38
# The folder ingest depends on in dvc.yaml: a source elsewhere would not re-run the pipeline on change.
EXTERNAL_DATA = "data/external"

Task = Literal["classification", "regression"]
EstimatorName = Literal["logistic_regression", "random_forest", "hist_gradient_boosting", "ridge", "xgboost"]
# Which estimators fit which task (the first is the default `mlcd data use` picks): the one list.
ESTIMATORS: dict[str, tuple[str, ...]] = {
    "classification": ("logistic_regression", "random_forest", "hist_gradient_boosting", "xgboost"),
    "regression": ("ridge", "random_forest", "hist_gradient_boosting", "xgboost"),
}
# What data.advice warns about; data.fail_on lists the kinds that stop validate.
WarningKind = Literal["id_column", "near_constant", "leak", "imbalance", "split_overlap"]
Fraction = Annotated[float, Field(gt=0, lt=1)]
# Which way is better, for every metric evaluate writes; the report and gate read this.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "precision_weighted": True,
    "recall_weighted": True,
    "f1_weighted": True,
    "roc_auc": True,
    "average_precision": True,
    "log_loss": False,
    "mse": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}


# Binary metrics about the positive class: not comparable across a change of positive class.
ABOUT_POSITIVE_CLASS = frozenset({"precision", "recall", "f1", "roc_auc", "average_precision"})
# Plots drawn for the positive class (evaluate writes them for binary targets only).
POSITIVE_CLASS_PLOTS = ("roc", "precision_recall")


class Section(BaseModel):
    # No .inf or .nan anywhere: DVC takes them, but no estimator, split or threshold means anything by them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataParams(Section):
    source: str = "sklearn:breast_cancer"
    schema_path: str = Field("data/schemas/breast_cancer.yaml", alias="schema")
    rows: int = Field(10_000, ge=10, le=100_000_000)
    seed: int = Field(42, ge=0)
    max_duplicate_fraction: float = Field(0.0, ge=0, le=1)
    # How a CSV source is read (Parquet carries its own types and encoding).
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    # Warnings (README, "Data warnings") that fail validate instead of only being reported.
    fail_on: list[WarningKind] = []
    # Rows per partition: ingest, validate and preprocess stream the table this many rows at a time,
    # so their memory is bounded by a partition (README, "Data beyond memory"); null reads it whole.
    partition_rows: int | None = Field(None, ge=10)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value in BUILTIN_SOURCES:
            return value
        if value.startswith(S3_SCHEME):
            if len(value) <= len(S3_SCHEME) or value[len(S3_SCHEME)] == "/":
                raise ValueError(f"{value!r} names no bucket: write s3://bucket/prefix/")
            return value
        allowed = ", ".join(repr(s) for s in BUILTIN_SOURCES)
        if not value.lower().endswith(FILE_SUFFIXES) and not value.endswith("/"):
            raise ValueError(
                f"expected {allowed}, a path to a {'/'.join(FILE_SUFFIXES)} file, a folder of Parquet "
                f"files (ending in /) or an {S3_SCHEME}bucket/prefix/"
            )
        parts = PurePosixPath(value).parts
        if parts[:2] != tuple(EXTERNAL_DATA.split("/")) or ".." in parts or len(parts) < 3:
            raise ValueError(
                f"{value!r} is not under {EXTERNAL_DATA}/, the folder the ingest stage depends on, so an "
                f"edit to it would not re-run the pipeline: move it to {EXTERNAL_DATA}/ and `dvc add` it"
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r}; e.g. utf-8, latin-1, cp1252") from None
        return value


class PreprocessParams(Section):
    test_size: Fraction = 0.2
    seed: int = Field(42, ge=0)
    # A column naming who or what a row is about (a patient, a customer): all of a group's rows go to
    # the same side, so the test score is about unseen groups. Null: rows are split one by one.
    group_by: str | None = None


class LogisticRegressionParams(Section):
    C: float = Field(1.0, gt=0)
    penalty: Literal["l2", "l1", "elasticnet", "none"] = "l2"
    l1_ratio: float = Field(0.5, ge=0, le=1)
    max_iter: int = Field(1000, ge=10, le=100_000)


class RandomForestParams(Section):
    n_estimators: int = Field(100, ge=1, le=5000)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(1, ge=1)


class HistGradientBoostingParams(Section):
    max_iter: int = Field(100, ge=1, le=10_000)
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_leaf_nodes: int = Field(31, ge=2)


class RidgeParams(Section):
    alpha: float = Field(1.0, ge=0)


class XGBoostParams(Section):
    """XGBoost's histogram trees (the `xgboost` extra); names as in XGBoost's scikit-learn API."""

    n_estimators: int = Field(100, ge=1, le=10_000)
    max_depth: int = Field(6, ge=1, le=64)
    learning_rate: float = Field(0.3, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    max_bin: int = Field(256, ge=2, le=65_536)


class ValueRange(Section):
    """`{range: [start, stop, step]}`: start, start + step, ... up to stop, both ends included."""

    range: tuple[float, float, float]

    @model_validator(mode="after")
    def _steps_forward(self) -> ValueRange:
        start, stop, step = self.range
        if step <= 0 or stop < start or (stop - start) / step > 10_000:
            raise ValueError(
                "range is [start, stop, step] with stop >= start, step > 0, at most 10,000 values"
            )
        return self

    def values(self) -> list[float | int]:
        start, stop, step = self.range
        count = int(round((stop - start) / step, 9)) + 1
        values = [start + i * step for i in range(count)]
        whole = all(float(v).is_integer() for v in (start, stop, step))
        return [int(v) for v in values] if whole else [round(v, 12) for v in values]


class LogUniform(Section):
    """`{log_uniform: [low, high]}`: random search only, a value between low and high on a log scale."""

    log_uniform: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if self.log_uniform[1] <= self.log_uniform[0]:
            raise ValueError("log_uniform is [low, high] with high > low > 0")
        return self


SearchValues = list[float | int | str | bool | None] | ValueRange | LogUniform


class SearchParams(Section):
    """train.search: a hyperparameter search before the final fit (README "Hyperparameter search").
    The best candidate's values are fitted exactly as if they were set in params.yaml."""

    kind: Literal["none", "grid", "random"] = "none"
    n_iter: int = Field(10, ge=1, le=10_000)  # random: candidates drawn
    seed: int = Field(42, ge=0)
    cv_folds: int = Field(5, ge=2, le=20)
    # A scikit-learn scorer name; null: the gate's first metric for the task (TASK_MAX_DROP).
    scoring: str | None = None
    # Per estimator: its scikit-learn parameter names, each a list, a range or (random) a log-uniform.
    space: dict[EstimatorName, dict[str, SearchValues]] = {}


class TrainParams(Section):
    task: Task = "classification"
    estimator: EstimatorName = "logistic_regression"
    seed: int = Field(42, ge=0)
    cv_folds: int = Field(0, ge=0, le=20)
    # "balanced" weighs each class by the inverse of its share (for a rare class that matters).
    class_weight: Literal["balanced"] | None = None
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    random_forest: RandomForestParams = RandomForestParams()
    hist_gradient_boosting: HistGradientBoostingParams = HistGradientBoostingParams()
    ridge: RidgeParams = RidgeParams()
    xgboost: XGBoostParams = XGBoostParams()
    search: SearchParams = SearchParams()

    @model_validator(mode="after")
    def _estimator_fits_task(self) -> TrainParams:
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (off) or between 2 and 20")
        fits = ESTIMATORS[self.task]
        if self.estimator not in fits:
            raise ValueError(
                f"estimator {self.estimator!r} does not fit task {self.task!r}; use one of {', '.join(fits)}"
            )
        if self.class_weight is not None and self.task == "regression":
            raise ValueError("class_weight is for classification; set it to null for a regression task")
        search = self.search
        if search.kind != "none":
            space = search.space.get(self.estimator) or {}
            if not space:
                raise ValueError(
                    f"search.kind is {search.kind!r} but search.space has no values for {self.estimator!r}; "
                    f"add search.space.{self.estimator} (a parameter name and its values), or set kind: none"
                )
            continuous = [name for name, values in space.items() if isinstance(values, LogUniform)]
            if search.kind == "grid" and continuous:
                raise ValueError(
                    f"a grid needs values to try, not a distribution: {', '.join(continuous)}; "
                    "give a list or a range, or use kind: random"
                )
        return self


class EvaluateParams(Section):
    plot_points: int = Field(200, ge=10, le=100_000)
    plot_rows: int = Field(5000, ge=10, le=1_000_000)


class PackageParams(Section):
    examples: int = Field(5, ge=1, le=1000)
    parity_tolerance: float | None = Field(None, gt=0, le=0.1)
    onnx_opset: int = Field(17, ge=13, le=21)


# How drift is measured (monitor/drift.py): Evidently's tests and distances.
DriftMethod = Literal["ks", "chisquare", "z", "wasserstein", "jensenshannon"]


class FeatureMonitorParams(Section):
    """One feature's drift test, in place of the default for its kind and the reference's size."""

    method: DriftMethod | None = None
    threshold: float | None = Field(None, gt=0)  # a p-value below it, or a distance at or above it


class MonitorParams(Section):
    """What the server measures of live traffic against the training split (package stores it in
    the bundle's reference.json, so a model carries the monitoring it was released with)."""

    window: int = Field(1000, ge=10, le=1_000_000)  # the last records compared with the reference
    min_window: int = Field(200, ge=10)  # fewer records in the window: no verdict yet
    interval_seconds: float = Field(10.0, ge=0.1, le=3600)  # how often the scores are computed
    reference_rows: int = Field(5000, ge=100, le=1_000_000)  # training values kept per feature
    drift_share: float = Field(0.5, gt=0, le=1)  # share of drifted features that is dataset drift
    # Binary classifiers: folds of the out-of-fold probabilities the estimate's calibration is
    # fitted on (the model refit that many times by package); 0: no estimate before labels.
    calibration_folds: int = Field(5, ge=0, le=20)
    features: dict[str, FeatureMonitorParams] = {}

    @model_validator(mode="after")
    def _window_holds_the_minimum(self) -> MonitorParams:
        if self.min_window > self.window:
            raise ValueError(f"min_window ({self.min_window}) must not exceed window ({self.window})")
        if self.calibration_folds == 1:
            raise ValueError("calibration_folds must be 0 (no estimate) or 2 or more (one fold fits nothing)")
        return self


# The gate's metric rules for a task whose metrics gate.max_drop does not name (the
# default names classification metrics): a regression is held to R², a multiclass
# model to macro F1 and balanced accuracy as well as accuracy.
TASK_MAX_DROP = {
    "binary": {"roc_auc": 0.01, "average_precision": 0.02, "f1": 0.03},
    "multiclass": {"f1": 0.03, "balanced_accuracy": 0.02, "accuracy": 0.02},
    "regression": {"r2": 0.02},
}


def task_of_metrics(names: set[str]) -> str:
    """Which kind of model wrote these metrics (evaluate writes a different set for each)."""
    if "r2" in names:
        return "regression"
    return "binary" if "average_precision" in names else "multiclass"


class GateParams(Section):
    """What `mlcd report --gate` refuses: a metric worse by more than max_drop (in the
    metric's own units, direction-aware), or bundle latency/size up by more than a ratio."""

    max_drop: dict[str, Annotated[float, Field(ge=0)]] = {"roc_auc": 0.01, "accuracy": 0.02, "f1": 0.03}
    max_latency_increase: float = Field(0.5, ge=0)
    max_size_increase: float = Field(0.5, ge=0)

    @field_validator("max_drop")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(HIGHER_IS_BETTER))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; allowed: {', '.join(HIGHER_IS_BETTER)}")
        return value

    def metric_limits(self, reported: set[str]) -> tuple[dict[str, float], str]:
        """max_drop's rules for the metrics a model reports, or its task's defaults if it names none;
        and a note saying when the defaults were taken."""
        chosen = {name: limit for name, limit in self.max_drop.items() if name in reported}
        if chosen or not reported:
            return chosen, ""
        task = task_of_metrics(reported)
        defaults = {name: limit for name, limit in TASK_MAX_DROP[task].items() if name in reported}
        return defaults, f" ({task} default: gate.max_drop names no metric this model reports)"


class Params(Section):
    data: DataParams = DataParams()
    preprocess: PreprocessParams = PreprocessParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    package: PackageParams = PackageParams()
    gate: GateParams = GateParams()
    monitor: MonitorParams = MonitorParams()

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def positive_seconds(text: str) -> float | None:
    """A duration from an environment variable: a finite number above 0, else None (the caller says why)."""
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys (train.logistic_regression.C), the form params are named in everywhere."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def describe_problem(error: ErrorDetails, model: type[BaseModel]) -> str:
    """One pydantic validation error of `model` as `dotted.key: what is wrong`, naming allowed keys."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _section_model(model, error["loc"][:-1])
        allowed = ", ".join(f.alias or n for n, f in parent.model_fields.items()) if parent else ""
        return f"{key}: unknown key; allowed keys here: {allowed}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" or not key:
        return f"{key or 'params'}: {message}"
    return f"{key}: {message} (got {error.get('input')!r})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds: Model, list[Model], Model | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)


def _section_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: _model_in took the item model from list[...] already
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        found = _model_in(fields[part].annotation) if part in fields else None
        if found is None:
            return None
        model = found
    return model


SectionT = TypeVar("SectionT", bound=BaseModel)


def validated(model: type[SectionT], raw: Any, origin: str) -> SectionT:
    """Already-loaded YAML as `model`; every problem is listed in one ConfigError naming `origin`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [describe_problem(e, model) for e in exc.errors()]
        raise ConfigError(f"{origin} is invalid; fix these keys:", problems) from None


def parse_params(raw: Any, origin: str = PARAMS_FILE) -> Params:
    return validated(Params, {} if raw is None else raw, origin)


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML that refuses a key given twice in a mapping, as DVC's reader does (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})"
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    return parse_params(read_params_yaml(Path(path)), origin=str(path))


def read_params_yaml(path: Path) -> Any:
    """params.yaml as written (before defaults), refused as DVC refuses it: empty, or a key given twice."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: run mlcd from the project root or pass --params")
    return params_yaml_from_text(path.read_text(encoding="utf-8"), str(path))


def params_yaml_from_text(text: str, origin: str) -> Any:
    """The same checks on params.yaml's text from elsewhere (a commit: the report's base)."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from None
    if raw is None:  # empty, or comments only: DVC finds none of the keys its stages list
        raise ConfigError(f"{origin} is empty: `git checkout HEAD -- {origin}` brings back the committed one")
    return raw


# The plot data files under ProjectPaths.plots, one per plot dvc.yaml declares. Evaluate writes
# every one for every task; one that does not fit the task is a bare `[]`, which `dvc plots`
# skips quietly (a missing file would be a "failed to load" warning).
PLOT_NAMES = ("roc", "precision_recall", "confusion", "predicted_vs_actual")


@dataclass(frozen=True)
class ProjectPaths:
    """Where every stage reads and writes, relative to the project root.

    dvc.yaml names the same files; tests/unit/test_config.py keeps the two in step.
    """

    root: Path = Path()

    @property
    def params(self) -> Path:
        return self.root / PARAMS_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def external_data(self) -> Path:
        return self.root / EXTERNAL_DATA

    @property
    def raw_data(self) -> Path:
        return self.root / "data" / "raw" / "dataset.parquet"

    @property
    def train_data(self) -> Path:
        return self.root / "data" / "processed" / "train.parquet"

    @property
    def test_data(self) -> Path:
        return self.root / "data" / "processed" / "test.parquet"

    @property
    def model(self) -> Path:
        return self.root / "models" / "model.skops"

    @property
    def bundle(self) -> Path:
        return self.root / "models" / "bundle"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def data_profile(self) -> Path:
        return self.metrics_dir / "data.json"

    @property
    def train_metrics(self) -> Path:
        return self.metrics_dir / "train.json"

    @property
    def search_metrics(self) -> Path:
        return self.metrics_dir / "search.json"

    @property
    def search_candidates(self) -> Path:
        return self.metrics_dir / "search_candidates.json"

    @property
    def metrics(self) -> Path:
        return self.metrics_dir / "metrics.json"

    @property
    def per_class_metrics(self) -> Path:
        return self.metrics_dir / "per_class.json"

    @property
    def plots(self) -> Path:
        return self.metrics_dir / "plots"

    @property
    def figures(self) -> Path:
        return self.metrics_dir / "figures"

    def schema(self, data: DataParams) -> Path:
        return self.root / data.schema_path

    def source(self, data: DataParams) -> Path:
        return self.root / data.source
