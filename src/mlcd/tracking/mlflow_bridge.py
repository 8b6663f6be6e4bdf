"""MLflow as a mirror of what git and DVC hold: one run per commit's results, one registered
model version per GTO registration, one alias per stage. Never a second source of truth.

The server is MLFLOW_TRACKING_URI; credentials come only from MLflow's own variables
(MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD). Logging is idempotent: a run is
found again by its `mlcd.key` tag (commit and dvc.lock md5), a model version by its
`mlcd.git_tag` tag. The pipeline stages log nothing, so `dvc repro` and run-cache hits stay
free of side effects. Needs the `mlflow` extra (mlflow-skinny).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd.bundle import MODEL_FILE
from mlcd.errors import MlcdError, TrackingError
from mlcd.tracking.results import PipelineResults, collect

URI_VARIABLE = "MLFLOW_TRACKING_URI"
EXPERIMENT_VARIABLE = "MLFLOW_EXPERIMENT_NAME"  # MLflow's own variable for the experiment
DEFAULT_EXPERIMENT = "mlcd"
MODEL_ARTIFACT = "model"  # the logged model's name inside its run
KEY_TAG, COMPLETE_TAG = "mlcd.key", "mlcd.complete"
MODEL_URI_TAG, MODEL_ID_TAG = "mlcd.model_uri", "mlcd.model_id"
GIT_TAG_TAG = "mlcd.git_tag"
# MLflow retries a refused connection for minutes by default; a mirror must fail fast.
_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    experiment_id: str
    created: bool  # False: the commit's run was there already and nothing was written
    model_uri: str
    model_id: str  # MLflow 3's logged-model id, which a registered version must name


def tracking_uri() -> str:
    uri = os.environ.get(URI_VARIABLE, "")
    if not uri:
        raise TrackingError(f"{URI_VARIABLE} is not set: point it at your MLflow tracking server")
    return uri


@contextmanager
def _mlflow_errors(doing: str) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"MLflow refused {doing}: {first}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise TrackingError(f"MLflow at {os.environ.get(URI_VARIABLE)} failed {doing}: {exc}") from None


def client() -> Any:
    """An MlflowClient for MLFLOW_TRACKING_URI, after checking the server answers at all."""
    uri = tracking_uri()
    for name, value in _CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # MLflow warns on every model it logs that it cannot find pip's version (uv venvs have no pip).
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10).close()
        except (OSError, urllib.error.URLError) as exc:
            raise TrackingError(f"the MLflow server {uri} does not answer: {exc}") from None
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def log_results(root: Path, rev: str | None, experiment: str | None = None, mlflow: Any = None) -> LoggedRun:
    """Log (or find) the run of `rev`'s results, or the workspace's (through `mlflow`, or a new client)."""
    with tempfile.TemporaryDirectory(prefix="mlcd-mlflow-") as tmp:
        results = collect(root, rev, Path(tmp))
        mlflow = mlflow or client()
        with _mlflow_errors("logging the run"):
            return _log(
                mlflow, results, experiment or os.environ.get(EXPERIMENT_VARIABLE) or DEFAULT_EXPERIMENT
            )


def _experiment_id(mlflow: Any, name: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    return str(found.experiment_id) if found else str(mlflow.create_experiment(name))


def _find_run(mlflow: Any, experiment_id: str, key: str) -> Any:
    runs = mlflow.search_runs([experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=2)
    return runs[0] if runs else None


def _log(mlflow: Any, results: PipelineResults, experiment: str) -> LoggedRun:
    import mlflow as mlflow_module
    from mlflow.entities import Metric, Param, RunTag

    experiment_id = _experiment_id(mlflow, experiment)
    run = _find_run(mlflow, experiment_id, results.key)
    if run is not None and run.data.tags.get(COMPLETE_TAG) == "true":
        tags = run.data.tags
        return LoggedRun(
            run.info.run_id, experiment_id, False, tags.get(MODEL_URI_TAG, ""), tags.get(MODEL_ID_TAG, "")
        )
    tags = {
        KEY_TAG: results.key,
        "mlcd.commit": results.commit,
        "mlflow.source.git.commit": results.commit,  # MLflow's own tag: the UI links the commit
        **({"mlcd.branch": results.branch} if results.branch else {}),
        **({"mlcd.dvc_experiment": results.experiment} if results.experiment else {}),
        **{f"mlcd.dvc.{name}_md5": md5 for name, md5 in results.hashes.items()},
    }
    if run is None:  # a run left without COMPLETE_TAG (an interrupted log) is finished, not duplicated
        name = results.experiment or f"{results.branch or 'detached'}@{results.commit[:8]}"
        run = mlflow.create_run(experiment_id, run_name=name, tags=tags)
    run_id = run.info.run_id
    stamp = 0
    metrics = [Metric(k, v, stamp, 0) for k, v in {**results.metrics, **results.cv_metrics}.items()]
    params = [Param(k, v[:6000]) for k, v in results.params.items()]  # MLflow's value length limit
    existing = set(run.data.params) if run.data else set()
    mlflow.log_batch(
        run_id,
        metrics=metrics,
        params=[p for p in params if p.key not in existing],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    for figure in results.figures:
        mlflow.log_artifact(run_id, str(figure), "figures")
    if results.report is not None:
        mlflow.log_artifact(run_id, str(results.report), "report")
    import onnx

    # MLflow prints "View run ..." links on stdout; mlcd's stdout is for data (--json), so they go to stderr.
    with contextlib.redirect_stdout(sys.stderr), mlflow_module.start_run(run_id=run_id):
        info = mlflow_module.onnx.log_model(
            onnx.load(results.bundle / MODEL_FILE),
            name=MODEL_ARTIFACT,
            signature=_signature(results.bundle),
            save_as_external_data=False,  # one file, like the bundle's
        )
    mlflow.set_tag(run_id, MODEL_URI_TAG, info.model_uri)
    mlflow.set_tag(run_id, MODEL_ID_TAG, info.model_id or "")
    mlflow.set_tag(run_id, COMPLETE_TAG, "true")
    return LoggedRun(run_id, experiment_id, True, info.model_uri, info.model_id or "")


def _signature(bundle: Path) -> Any:
    """The bundle's schema as MLflow's signature: one named column per feature, as the API takes it."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    from mlcd.bundle import open_bundle
    from mlcd.serve.model import Feature

    schema = open_bundle(bundle).schema
    features = [Feature.from_schema(entry, schema.missing_category) for entry in schema.features]
    columns: list[ColSpec | TensorSpec] = [
        ColSpec("double" if f.numeric else "string", f.name, required=not f.may_be_missing) for f in features
    ]
    return ModelSignature(inputs=Schema(columns))


def register_version(
    root: Path, tag: str, version: str, commit: str, model_hash: str | None, mlflow: Any = None
) -> str:
    """The MLflow model version mirroring registration `tag` (created once); its number."""
    from mlcd.dvcfiles import model_artifact
    from mlcd.versions.releases import bundle_md5

    art = model_artifact(root)
    mlflow = mlflow or client()
    logged = log_results(root, commit, mlflow=mlflow)
    with _mlflow_errors(f"registering {tag}"):
        existing = _model_version(mlflow, art.name, tag)
        if existing is not None:
            return str(existing.version)
        if not mlflow.search_registered_models(filter_string=f"name = '{art.name}'"):
            mlflow.create_registered_model(art.name, description="Mirrored by mlcd from GTO tags in git.")
        created = mlflow.create_model_version(
            art.name,
            source=logged.model_uri,
            run_id=logged.run_id,
            model_id=logged.model_id or None,
            tags={
                GIT_TAG_TAG: tag,
                "mlcd.version": version,
                "mlcd.commit": commit,
                "mlcd.model_hash": model_hash or "",
                "mlcd.bundle_md5": bundle_md5(root, commit, art) or "",
            },
            description=f"{tag} (commit {commit[:8]})",
        )
        return str(created.version)


def _model_version(mlflow: Any, name: str, tag: str) -> Any:
    for found in mlflow.search_model_versions(f"name = '{name}'"):
        if found.tags.get(GIT_TAG_TAG) == tag:
            return found
    return None


def set_stage_alias(root: Path, stage: str, tag: str | None, mlflow: Any = None) -> str:
    """Point alias `stage` at the version registered by `tag`, or remove it (tag None)."""
    from mlcd.dvcfiles import model_artifact

    art = model_artifact(root)
    mlflow = mlflow or client()
    with _mlflow_errors(f"setting alias {stage}"):
        if tag is None:
            aliases = mlflow.get_registered_model(art.name).aliases
            if stage in aliases:
                mlflow.delete_registered_model_alias(art.name, stage)
            return f"alias {stage} removed"
        found = _model_version(mlflow, art.name, tag)
        if found is None:
            raise TrackingError(f"{tag} is not registered in MLflow yet: run `mlcd mlflow sync`")
        mlflow.set_registered_model_alias(art.name, stage, found.version)
        return f"alias {stage} -> version {found.version} ({tag})"


def sync(root: Path) -> list[str]:
    """Back-fill every registered version and point each stage's alias where GTO says; what it did."""
    from mlcd.dvcfiles import model_artifact
    from mlcd.versions import registry
    from mlcd.versions.releases import model_hash_at

    art = model_artifact(root)
    mlflow = client()
    versions = registry.list_registered(root, art.name)
    done = []
    for found in reversed(versions):
        model_hash = model_hash_at(root, found.commit, art)
        number = register_version(root, found.tag, found.version, found.commit, model_hash, mlflow)
        done.append(f"{found.tag}: MLflow version {number}")
    for stage in registry.stages(root):
        holder = registry.holder(versions, stage)
        done.append(set_stage_alias(root, stage, holder.tag if holder else None, mlflow))
    return done


# A mirroring step's outcome: None when MLflow is not set up, else (done, what happened).
Mirrored = tuple[bool, str] | None


def mirror(step: Callable[[], str]) -> Mirrored:
    """Run one registry-mirroring step when MLFLOW_TRACKING_URI is set: (done, what happened).

    Never raises: git is the registry, so a down or refusing MLflow (or a missing `mlflow` extra)
    must not undo or block the tag that was just written. `mlcd mlflow sync` catches up later.
    """
    if not os.environ.get(URI_VARIABLE):
        return None
    later = "the git tag stands; `mlcd mlflow sync` mirrors it later"
    try:
        return True, step()
    except ModuleNotFoundError as exc:
        return False, f"MLflow not updated: the `mlflow` extra is not installed ({exc.name}); {later}"
    except MlcdError as exc:
        return False, f"MLflow not updated: {exc}; {later}"
    except Exception as exc:  # the mirror must never take the release down with it
        return False, f"MLflow not updated: {type(exc).__name__}: {exc}; {later}"


def mirror_registration(root: Path, tag: str, version: str, commit: str, model_hash: str | None) -> Mirrored:
    """After `mlcd release`: the new version as an MLflow model version (when MLflow is set up)."""
    return mirror(
        lambda: "MLflow: registered as version " + register_version(root, tag, version, commit, model_hash)
    )


def mirror_stage(root: Path, stage: str, holder: str | None) -> Mirrored:
    """After `mlcd promote`: MLflow's alias follows the stage to whichever version holds it now."""
    return mirror(lambda: "MLflow: " + set_stage_alias(root, stage, holder))
