"""The MLflow mirror against a real MLflow tracking server on loopback (full mlflow, SQLite).

Read back through MlflowClient, as a team's MLflow UI would show it: runs, models, versions, aliases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from mlcd.http_client import free_port

from ..helpers import VENV_BIN, Repo
from ..tracking.mlflow_server import MlflowServer, start_mlflow

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[MlflowServer]:
    """One server for the module: each test logs into its own experiment; one test uses the registry."""
    started = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield started
    started.stop()


@pytest.fixture
def client(server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.url)


def env(server: MlflowServer, experiment: str = "") -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_EXPERIMENT_NAME": experiment}


def committed(repo: Repo, commit: str, path: str) -> str:
    return repo.run("git", "show", f"{commit}:{path}").stdout


def test_log_a_release_commit_reads_back_and_a_second_log_changes_nothing(repo, released, server, client):
    _, produced = released
    commit = produced["1.1.0"]["commit"]
    first = repo.mlcd("mlflow", "log", "--rev", "model@v1.1.0", env=env(server))
    assert "MLflow: logged run" in first.stderr
    (experiment,) = [e for e in client.search_experiments() if e.name == "mlcd"]
    (run,) = client.search_runs([experiment.experiment_id])
    data = run.data

    params = yaml.safe_load(committed(repo, commit, "params.yaml"))
    assert data.params["train.logistic_regression.C"] == str(params["train"]["logistic_regression"]["C"])
    assert data.params["data.seed"] == str(params["data"]["seed"])
    metrics = json.loads(committed(repo, commit, "metrics/metrics.json"))
    assert {k: data.metrics[k] for k in metrics} == pytest.approx(metrics)
    cv = json.loads(committed(repo, commit, "metrics/train.json"))["cv"]
    assert data.metrics["cv.roc_auc.mean"] == pytest.approx(cv["roc_auc"]["mean"])
    lock = yaml.safe_load(committed(repo, commit, "dvc.lock"))
    bundle_md5 = next(o["md5"] for o in lock["stages"]["package"]["outs"])
    assert data.tags["mlcd.commit"] == commit == data.tags["mlflow.source.git.commit"]
    assert data.tags["mlcd.dvc.bundle_md5"] == bundle_md5
    assert data.tags["mlcd.branch"] == "main"
    assert {"data", "model", "bundle"} <= {
        k.split(".")[2].removesuffix("_md5") for k in data.tags if k.startswith("mlcd.dvc.")
    }
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
    assert figures and all(path.endswith(".png") for path in figures)

    again = repo.mlcd("mlflow", "log", "--rev", commit, env=env(server))
    assert f"already logged, unchanged: run {run.info.run_id}" in again.stderr
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_the_logged_onnx_model_gives_the_bundles_answers(repo, server, client):
    import mlflow.onnx
    import onnxruntime as ort

    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import to_batch

    repo.mlcd("mlflow", "log", env=env(server, "workspace"))  # the workspace's results
    (run,) = client.search_runs([client.get_experiment_by_name("workspace").experiment_id])
    mlflow.set_tracking_uri(server.url)
    proto = mlflow.onnx.load_model(run.data.tags["mlcd.model_uri"])
    bundle = BundleModel(repo.path / "models" / "bundle")
    batch = to_batch(bundle.examples.records, bundle.layout, max_batch=1000)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, bundle.feeds(batch.numbers, batch.texts))
    expected = bundle.predict(batch.numbers, batch.texts)
    assert [str(label) for label in labels] == expected["labels"]
    assert probabilities.tolist() == [[row[c] for c in bundle.classes] for row in expected["probabilities"]]
    signature = mlflow.models.get_model_info(run.data.tags["mlcd.model_uri"]).signature
    assert [c.name for c in signature.inputs.inputs] == [f.name for f in bundle.features]


def test_release_promote_and_sync_mirror_the_registry(repo, released, server, client):
    _, produced = released
    synced = repo.mlcd("mlflow", "sync", env=env(server, "registry"))  # the three releases made before MLflow
    assert "model@v1.0.0: MLflow version 1" in synced.stderr
    versions = {v.tags["mlcd.git_tag"]: v for v in client.search_model_versions("name = 'model'")}
    assert sorted(versions) == ["model@v1.0.0", "model@v1.1.0", "model@v1.2.0"]
    made = produced["1.2.0"]
    assert versions["model@v1.2.0"].tags["mlcd.commit"] == made["commit"]
    assert versions["model@v1.2.0"].tags["mlcd.model_hash"] == made["manifest"]["model_hash"]

    repo.mlcd("promote", "1.1.0", "production", "--no-image-check", env=env(server, "registry"))
    assert client.get_model_version_by_alias("model", "production").tags["mlcd.git_tag"] == "model@v1.1.0"
    repo.run("git", "commit", "-q", "--allow-empty", "-m", "next")
    released_now = repo.mlcd("release", "1.3.0", env=env(server, "registry"))
    assert "MLflow: registered as version 4" in released_now.stderr
    repo.mlcd("promote", "1.3.0", "production", "--no-image-check", env=env(server, "registry"))
    assert client.get_model_version_by_alias("model", "production").tags["mlcd.git_tag"] == "model@v1.3.0"
    repo.mlcd("promote", "1.3.0", "production", "--demote", env=env(server, "registry"))
    # GTO: the stage falls back to the version that held it before; MLflow's alias follows.
    assert client.get_model_version_by_alias("model", "production").tags["mlcd.git_tag"] == "model@v1.1.0"

    again = repo.mlcd("mlflow", "sync", env=env(server, "registry"))  # idempotent: nothing new
    assert "model@v1.3.0: MLflow version 4" in again.stderr
    assert len(client.search_model_versions("name = 'model'")) == 4
    gto_stages = json.loads(repo.run(str(VENV_BIN / "gto"), "show", "--json").stdout)["model"]["stage"]
    assert gto_stages["production"] == "v1.1.0"


def test_a_stopped_registry_never_blocks_a_release(repo):
    # A stopped server's address: nothing listens on it (starting and stopping one cost 10 s).
    stopped = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "MLFLOW_EXPERIMENT_NAME": ""}
    repo.run("git", "commit", "-q", "--allow-empty", "-m", "next")
    done = repo.mlcd("release", "2.0.0", env=stopped)
    assert done.returncode == 0
    assert "tagged model@v2.0.0" in done.stderr
    url = stopped["MLFLOW_TRACKING_URI"]
    assert f"warning: MLflow not updated: the MLflow server {url} does not answer" in done.stderr
    assert "the git tag stands; `mlcd mlflow sync` mirrors it later" in done.stderr
    assert "model@v2.0.0" in repo.run("git", "tag").stdout
    failed = repo.mlcd("mlflow", "log", env=stopped, check=False)
    assert failed.returncode == 2 and "does not answer" in failed.stderr
    best_effort = repo.mlcd("mlflow", "log", "--best-effort", env=stopped)
    assert "warning: MLflow not updated" in best_effort.stderr
    unset = repo.mlcd("mlflow", "log", "--best-effort", env={"MLFLOW_TRACKING_URI": ""})
    assert "MLFLOW_TRACKING_URI is not set: nothing logged" in unset.stderr


def test_a_dvc_experiment_is_logged_under_its_name(repo, server, client):
    """`dvc exp run` is the peer: its experiment, logged by name, carries the name and its params."""
    repo.dvc("exp", "run", "-S", "train.logistic_regression.C=0.3", "-n", "c-point-3")
    done = repo.mlcd("mlflow", "log", "--rev", "c-point-3", env=env(server, "experiments"))
    assert "MLflow: logged run" in done.stderr
    (run,) = client.search_runs([client.get_experiment_by_name("experiments").experiment_id])
    assert run.data.tags["mlcd.dvc_experiment"] == "c-point-3"
    assert run.info.run_name == "c-point-3"
    assert run.data.params["train.logistic_regression.C"] == "0.3"
