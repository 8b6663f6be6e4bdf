"""The own-data matrix: mlcd's metrics next to plain scikit-learn on the same split, and the repro time.

Run: uv run python benchmarks/own_data.py
For each public table of tests/e2e/test_own_data.py: a temp copy of this project, `mlcd data
use` on the file, the schema and params edits the test makes after validate's refusal, then a
timed `dvc repro` (all six stages, cross-validation as params.yaml has it). The baseline is a
plain scikit-learn script on mlcd's own train/test split: median imputation and scaling of
numbers (dates as mlcd's derived parts), one-hot text with missing as a level, the same
estimator with default settings. Prints a table; asserts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from _project import ENV, project_copy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.test_own_data import TABLES, Table, write_table

from mlcd.report.compare import format_number


def sh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)


def plain_sklearn(repo: Path, schema: dict, task: str) -> dict[str, float]:
    from sklearn import metrics
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlcd.data.schema import DatasetSchema

    model_schema = DatasetSchema.model_validate(schema).for_model()
    target = model_schema.target.name
    train = pd.read_parquet(repo / "data" / "processed" / "train.parquet")
    test = pd.read_parquet(repo / "data" / "processed" / "test.parquet")
    numeric, text = model_schema.numeric, model_schema.categorical
    parts = [("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)]
    if text:
        parts.append(("text", OneHotEncoder(handle_unknown="ignore"), text))
    estimator = Ridge() if task == "regression" else LogisticRegression(max_iter=1000)
    model = Pipeline([("prepare", ColumnTransformer(parts)), ("fit", estimator)])
    model.fit(train[numeric + text], train[target])
    predicted = model.predict(test[numeric + text])
    truth = test[target]
    if task == "regression":
        return {
            "r2": metrics.r2_score(truth, predicted),
            "mae": metrics.mean_absolute_error(truth, predicted),
        }
    scores = {"accuracy": metrics.accuracy_score(truth, predicted)}
    positive = model_schema.positive_class
    if positive:
        scores["f1"] = metrics.f1_score(truth, predicted, pos_label=positive)
    else:
        scores["f1"] = metrics.f1_score(truth, predicted, average="macro")
    return scores


def one_table(table: Table) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = project_copy(Path(tmp) / "repo")
        source = write_table(table, Path(tmp))  # as the test writes it: TSV tab-separated, .gz compressed
        frame = table.load()
        used = sh("mlcd", "data", "use", str(source), "--target", table.target, cwd=repo)
        if used.returncode:
            raise SystemExit(used.stderr)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        schema_path = repo / params["data"]["schema"]
        schema = yaml.safe_load(schema_path.read_text())
        schema["target"].update(table.schema_edit)
        schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
        for key, value in table.params_edit.items():
            section, name = key.split(".")
            params[section][name] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        started = time.perf_counter()
        repro = sh("dvc", "repro", cwd=repo)
        seconds = time.perf_counter() - started
        if repro.returncode:
            raise SystemExit(repro.stdout[-2000:] + repro.stderr[-2000:])
        ours = json.loads((repo / "metrics" / "metrics.json").read_text())
        task = params["train"]["task"]
        plain = plain_sklearn(repo, schema, task)
        return {
            "table": table.name,
            "rows": len(frame),
            "task": task if task == "regression" else f"{len(schema['target']['classes'])} classes",
            # metrics.json keeps 6 decimals: the baseline is rounded alike, so equal reads equal.
            "scores": {name: (ours[name], round(plain[name], 6)) for name in plain},
            "repro_s": seconds,
        }


def main() -> None:
    rows = [one_table(table) for table in TABLES]
    print("| table | rows | task | metric | mlcd | plain scikit-learn | difference | dvc repro s |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for row in rows:
        for index, (name, (ours, plain)) in enumerate(row["scores"].items()):  # type: ignore[attr-defined]
            head = [row["table"], f"{row['rows']:,}", row["task"]] if index == 0 else ["", "", ""]
            seconds = f"{row['repro_s']:.1f}" if index == 0 else ""
            cells = [*head, name, f"{ours:.4f}", f"{plain:.4f}", format_number(ours - plain, "+.4f"), seconds]
            print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
