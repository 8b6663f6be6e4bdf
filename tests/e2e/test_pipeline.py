"""The pipeline through real dvc in temp git repos: hashes, caching, remotes, determinism."""

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mlcd.reproducibility.lockcheck import explain, lock_drift

from ..helpers import Repo, committed_text

pytestmark = pytest.mark.e2e
STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "package"]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def output_files(repo: Repo) -> dict[str, str]:
    """sha256 of every file every stage wrote, by path."""
    found = {}
    for stage in repo.lock()["stages"].values():
        for out in stage.get("outs", []):
            path = repo.path / out["path"]
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                found[str(file.relative_to(repo.path))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


def test_repro_writes_every_output_with_its_hash_in_dvc_lock(reproduced_repo):
    lock = reproduced_repo.lock()
    assert list(lock["stages"]) == STAGES
    for name, stage in lock["stages"].items():
        assert stage["outs"], name
        for out in stage["outs"]:
            path = reproduced_repo.path / out["path"]
            assert path.exists(), out["path"]
            if path.is_file():
                assert out["md5"] == md5(path), out["path"]
            else:
                assert out["md5"].endswith(".dir") and out["nfiles"] == len(list(path.iterdir()))
        for dep in stage["deps"]:
            assert dep["md5"], dep["path"]
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["estimator"] == "logistic_regression"
    assert reproduced_repo.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_bundle_and_metrics_are_in_place(reproduced_repo):
    bundle = reproduced_repo.path / "models" / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "examples.json",
        "manifest.json",
        "model.onnx",
        "reference.json",
        "schema.json",
    ]
    manifest = yaml.safe_load((bundle / "manifest.json").read_text())
    # No commit inside: the bundle depends only on its DVC inputs (the image label carries the commit).
    assert "git_commit" not in manifest
    metrics = reproduced_repo.dvc("metrics", "show", "--json").stdout
    assert '"roc_auc"' in metrics
    plots = reproduced_repo.dvc("plots", "show", "--json").stdout
    for name in ("ROC", "Precision-recall", "Confusion matrix"):
        assert name in plots


def test_committed_lock_is_not_stale(reproduced_repo):
    """The committed dvc.lock must be what this code produces, every stage (re-run `dvc repro` and commit)."""
    committed = yaml.safe_load(committed_text("dvc.lock"))  # HEAD's, not a lock a repro just rewrote
    drifts = lock_drift(committed["stages"], reproduced_repo.lock()["stages"])
    assert not drifts, "\n".join(explain(drifts))


def test_second_repro_runs_nothing(repo_copy):
    done = repo_copy.dvc("repro")
    assert ran_stages(done.stdout) == []
    assert "Data and pipelines are up to date." in done.stdout


def test_changing_a_train_param_reruns_only_train_evaluate_package(repo_copy):
    repo_copy.set_params(**{"train.logistic_regression.C": 0.25})
    done = repo_copy.dvc("repro")
    assert ran_stages(done.stdout) == ["train", "evaluate", "package"]
    assert (
        repo_copy.lock()["stages"]["train"]["params"]["params.yaml"]["train"]["logistic_regression"]["C"]
        == 0.25
    )


def test_changing_the_schema_reruns_from_validate(repo_copy):
    schema = repo_copy.path / "data" / "schemas" / "breast_cancer.yaml"
    schema.write_text(schema.read_text() + "# reviewed\n")
    done = repo_copy.dvc("repro")
    assert ran_stages(done.stdout) == ["validate", "preprocess", "train", "evaluate", "package"]


def cached_outputs(repo: Repo) -> list[Path]:
    """Outputs dvc keeps in its cache (cache: false ones live in git instead)."""
    found = []
    for stage in yaml.safe_load((repo.path / "dvc.yaml").read_text())["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                name, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                if (options or {}).get("cache", True):
                    found.append(repo.path / name)
    return found


def remove_outputs_and_cache(repo: Repo) -> None:
    shutil.rmtree(repo.path / ".dvc" / "cache")
    for path in cached_outputs(repo):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def test_push_then_pull_into_empty_cache_restores_identical_files(repo_copy):
    before = output_files(repo_copy)
    repo_copy.dvc("push")
    assert any(repo_copy.remote.rglob("*")), "nothing reached the default remote"
    remove_outputs_and_cache(repo_copy)
    assert not (repo_copy.path / "models" / "bundle").exists()
    repo_copy.dvc("pull")
    assert output_files(repo_copy) == before
    assert repo_copy.dvc("status").stdout.strip() == "Data and pipelines are up to date."


def test_own_data_tracked_with_dvc_add_drives_ingest(repo_copy):
    from mlcd.data.sources import breast_cancer_frame

    source = repo_copy.path / "data" / "external" / "mine.csv"
    breast_cancer_frame().to_csv(source, index=False)
    repo_copy.dvc("add", "data/external/mine.csv")
    repo_copy.set_params(**{"data.source": "data/external/mine.csv"})
    done = repo_copy.dvc("repro")
    assert ran_stages(done.stdout)[0] == "ingest"
    breast_cancer_frame().head(400).to_csv(source, index=False)
    repo_copy.dvc("add", "data/external/mine.csv")
    status = repo_copy.dvc("status", "ingest").stdout
    assert "changed deps" in status and "data/external" in status


def test_plots_show_and_diff_load_without_errors_for_a_classifier(reproduced_repo):
    """Every plot dvc.yaml declares loads; the regression-only one is empty, so dvc leaves it out."""
    import json

    for command in (["plots", "show", "--json"], ["plots", "diff", "HEAD", "--json"]):
        done = reproduced_repo.dvc(*command)
        assert "failed to load" not in done.stdout + done.stderr, command
        shown = json.loads(done.stdout[done.stdout.index("{") :])
        assert not shown.get("errors"), shown.get("errors")
        assert shown["data"]["Predicted vs actual"] == []
        roc = shown["data"]["ROC"][0]["content"]
        assert roc["title"]["text"] == "ROC curve (positive class)"
        assert roc["encoding"]["x"]["title"] == "false positive rate"
        assert not any(name.endswith(".png") for name in shown["data"]), "figures repeat the curves"
