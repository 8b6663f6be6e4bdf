"""The pipeline's stages, as `dvc repro` runs them (dvc.yaml), and `mlcd params`."""

from __future__ import annotations

from pathlib import Path

import typer

from mlcd.cli.base import RootOption, reports_errors, setup
from mlcd.config import PARAMS_FILE
from mlcd.errors import ConfigError


def register(app: typer.Typer) -> None:
    for command in (ingest, validate, preprocess, train, evaluate, package):
        app.command()(reports_errors(command))
    app.command("params")(reports_errors(show_params))


def ingest(repo: RootOption = Path()) -> None:
    """Write data/raw/dataset.parquet from data.source (bundled, a file, or synthetic)."""
    from mlcd.data.sources import run_ingest

    params, paths = setup(repo)
    run_ingest(params.data, paths)


def validate(repo: RootOption = Path()) -> None:
    """Check the raw data against data.schema; list every problem, or write metrics/data.json."""
    from mlcd.data.validation_partitions import run_validate

    params, paths = setup(repo)
    run_validate(params, paths)


def preprocess(repo: RootOption = Path()) -> None:
    """Split the validated data into seeded, stratified train and test Parquet files."""
    from mlcd.data.partitions import run_preprocess

    params, paths = setup(repo)
    run_preprocess(params.data, params.preprocess, paths)


def train(repo: RootOption = Path()) -> None:
    """Fit the pipeline named by train.estimator (optionally cross-validated); save with skops."""
    from mlcd.modeling.train import run_train

    params, paths = setup(repo)
    run_train(params.data, params.train, paths)


def evaluate(repo: RootOption = Path()) -> None:
    """Score the model on the test set: metrics/metrics.json, plot data and PNG figures."""
    from mlcd.modeling.evaluate import run_evaluate

    params, paths = setup(repo)
    run_evaluate(params.data, params.evaluate, paths)


def package(repo: RootOption = Path()) -> None:
    """Export to ONNX, check parity with scikit-learn, write models/bundle/ with its manifest."""
    from mlcd.files import dump_json
    from mlcd.modeling.package import run_package

    params, paths = setup(repo)
    manifest = run_package(params, paths)
    typer.echo(dump_json({"model_hash": manifest.model_hash, "metrics": manifest.metrics}), nl=False)


def show_params(repo: RootOption = Path()) -> None:
    """Check params.yaml as `dvc repro` would, and print it with every default filled in.

    Refused: unknown keys, wrong types or ranges, .inf/.nan, a key given twice, an empty file, and a
    key that a stage in dvc.yaml lists but params.yaml lacks (DVC would stop on it).
    """
    import yaml

    from mlcd.config import parse_params, read_params_yaml
    from mlcd.dvcfiles import missing_params

    params_file = repo / PARAMS_FILE
    raw = read_params_yaml(params_file)
    params = parse_params(raw, origin=str(params_file))
    if missing := missing_params(repo, raw):
        raise ConfigError(f"{params_file} lacks keys dvc.yaml's stages read; add them back:", missing)
    typer.echo(yaml.safe_dump(params.as_dict(), sort_keys=False), nl=False)
