"""The real .gitlab-ci.yml, run by gitlab-ci-local: merge-request, default-branch and tag pipelines."""

from __future__ import annotations

import json
import urllib.request

import pytest

from mlcd.container.podman import inspect_image, podman
from mlcd.deploy.podman_backend import PodmanBackend

from ..helpers import Repo, free_port_run
from ..system import install_nginx, install_podman
from ..tracking.mlflow_server import start_mlflow
from .gitlab_ci_local import GitlabCiLocal, image_variables, merge_request, open_merge_request

pytestmark = [pytest.mark.ci, pytest.mark.needs_node]

MR_UNSET = ("CI_COMMIT_BRANCH",)  # GitLab leaves it unset in merge-request pipelines


def when(jobs: dict[str, dict]) -> dict[str, str]:
    return {name: job["when"] for name, job in jobs.items() if job["when"] != "never"}


def test_rules_pick_the_jobs_of_each_pipeline(gitlab: GitlabCiLocal):
    mr = gitlab.list_jobs(merge_request(), unset=MR_UNSET)
    assert when(mr) == {name: "on_success" for name in ("check", "reproduce", "report", "build")}

    main = gitlab.list_jobs({"CI_COMMIT_BRANCH": "main"})
    assert when(main) == {
        "check": "on_success",
        "reproduce": "on_success",
        "build": "on_success",
        "deploy-staging": "on_success",
        "rollback-staging": "manual",
        "rollback-production": "manual",  # production is deployed by promotion only (stage tags)
    }
    # Tag pipelines, one per registry event: tests/ci/test_registry_events.py.

    # Alertmanager's webhook through the trigger API (TRIGGER_PAYLOAD set): the loop's retrain only.
    trigger = {
        "CI_PIPELINE_SOURCE": "trigger",
        "CI_COMMIT_BRANCH": "main",
        "TRIGGER_PAYLOAD": "/tmp/alerts.json",
    }
    assert when(gitlab.list_jobs(trigger)) == {"retrain": "on_success"}

    # A push to a branch with an open MR: the MR pipeline runs, no duplicate branch pipeline.
    assert when(gitlab.list_jobs({"CI_COMMIT_BRANCH": "feature", "CI_OPEN_MERGE_REQUESTS": "g/p!3"})) == {}
    assert when(gitlab.list_jobs({"CI_COMMIT_BRANCH": "feature"})) == {}


def test_merge_request_with_a_param_change_passes_and_posts_the_note(
    gitlab: GitlabCiLocal, developer: Repo, fake_gitlab_api, tmp_path
):
    fake, url = fake_gitlab_api
    open_merge_request(developer, "smaller-c", **{"train.logistic_regression.C": 0.5})
    mlflow = start_mlflow(tmp_path / "mlflow")  # a real tracking server: reproduce mirrors its results
    variables = {
        "MLFLOW_TRACKING_URI": mlflow.url,
        **merge_request(fake.merge_request),
        "CI_SERVER_URL": url,
        "CI_PROJECT_ID": fake.project,
        "GITLAB_TOKEN": "glpat-test-token",
        # The runner is another CPU family than the committer's: another BLAS kernel.
        "OPENBLAS_CORETYPE": "Sandybridge",
        # The check job runs all it runs on GitLab (ruff, mypy, hadolint, the schema check, pytest
        # with its JUnit and coverage reports), but pytest on one module in one process only: the
        # fast tier itself is part of this suite, and here what is tested is the job (about 110 s
        # less; `-n 0` spares two xdist workers' start-up). A basetemp of its own: by default pytest
        # would delete the older runs' folders under /tmp/pytest-of-<user>, gigabytes on this machine.
        "PYTEST_ADDOPTS": f"-n 0 tests/unit/test_layers.py --basetemp {tmp_path / 'check-basetemp'}",
    }
    try:
        run = gitlab.run("check", "reproduce", "report", variables=variables, unset=MR_UNSET)
        runs = _mlflow_runs(mlflow.url)
    finally:
        mlflow.stop()
    assert run.results == {"check": "PASS", "reproduce": "PASS", "report": "PASS"}, run.explain()
    assert "MLflow: logged run" in run.log("reproduce")
    head = developer.run("git", "rev-parse", "HEAD").stdout.strip()
    assert [r.data.tags["mlcd.commit"] for r in runs] == [head]
    assert runs[0].data.params["train.logistic_regression.C"] == "0.5"
    log = run.log("reproduce")
    assert "BLAS kernel: Sandybridge" in log
    assert "dvc.lock verified, identical" in log or "dvc.lock verified, equivalent" in log
    metrics_report = gitlab.project / ".gitlab-ci-local" / "artifacts" / "reproduce"
    assert any("roc_auc " in f.read_text() for f in metrics_report.rglob("metrics.txt"))
    assert [request.headers.get("private-token") for request in fake.requests if request.method != "GET"]
    (note,) = fake.notes.values()
    assert "<!-- mlcd-report -->" in note
    assert "| train.logistic_regression.C | 1.0 | 0.5 |" in note
    junit = gitlab.project / ".gitlab-ci-local" / "artifacts" / "check"
    assert list(junit.rglob("junit.xml")) and list(junit.rglob("coverage.xml")), "check reports missing"


def test_a_metric_regression_past_the_gate_fails_the_report_job(
    gitlab: GitlabCiLocal, developer: Repo, fake_gitlab_api
):
    fake, url = fake_gitlab_api
    # An L1 penalty this strong drops ROC-AUC by about 0.012; params.yaml allows 0.01.
    open_merge_request(
        developer,
        "sparse",
        **{"train.logistic_regression.penalty": "l1", "train.logistic_regression.C": 0.02},
    )
    variables = {**merge_request(), "CI_SERVER_URL": url, "CI_PROJECT_ID": fake.project, "GITLAB_TOKEN": "t"}
    # The report job alone: the gate reads the branch's committed metrics, which reproduce hands on
    # unchanged when it verifies the lock (the MR test above runs the whole chain).
    run = gitlab.run("report", variables=variables, unset=MR_UNSET)
    assert run.results == {"report": "FAIL"}, run.explain()
    assert "gate failed: roc_auc" in run.log("report")
    (note,) = fake.notes.values()
    assert "roc_auc" in note and "gate failed" in note.lower()


def test_a_stale_dvc_lock_fails_reproduce_naming_the_stage(gitlab: GitlabCiLocal, developer: Repo):
    developer.run("git", "checkout", "-q", "-b", "forgot-repro")
    developer.set_params(**{"train.logistic_regression.C": 0.5})
    developer.commit("change C without dvc repro")
    run = gitlab.run("reproduce", variables=merge_request(), unset=MR_UNSET)
    assert run.results == {"reproduce": "FAIL"}, run.explain()
    log = run.log("reproduce")
    assert "the committed dvc.lock does not match the reproduced pipeline" in log
    for stage in ("train", "package"):  # package records every param in its manifest
        assert (
            f"stale: stage '{stage}' was not re-run after its inputs changed: "
            "param train.logistic_regression.C: 1.0 -> 0.5. Run `dvc repro`"
        ) in log
    assert "changed only because an upstream output changed: evaluate" in log


@pytest.mark.needs_podman
def test_default_branch_pushes_outputs_builds_pushes_the_image_and_deploys_staging(
    gitlab: GitlabCiLocal, developer: Repo, registry, tmp_path
):
    install_podman()
    install_nginx()  # the podman backend's proxy
    empty_remote = tmp_path / "team-remote"  # nothing pushed yet: CI must reproduce and push
    head = developer.run("git", "rev-parse", "HEAD").stdout.strip()
    image = f"{registry.address}/group/mlcd:{head}"
    port = free_port_run()
    variables = {
        "CI_COMMIT_BRANCH": "main",
        **image_variables(registry, empty_remote, port, tmp_path / "staging"),
    }
    try:
        run = gitlab.run("reproduce", "build", "deploy-staging", variables=variables)
        assert run.results == {"reproduce": "PASS", "build": "PASS", "deploy-staging": "PASS"}, run.explain()
        assert "outputs and run-cache pushed" in run.log("reproduce")
        assert (empty_remote / "runs").is_dir(), "run-cache was not pushed"
        bundle_md5 = next(o["md5"] for o in developer.lock()["stages"]["package"]["outs"])
        assert (empty_remote / "files" / "md5" / bundle_md5[:2] / bundle_md5[2:]).is_file()

        tags = json.load(urllib.request.urlopen(f"{registry.url}/v2/group/mlcd/tags/list", timeout=10))
        assert tags["tags"] == [head]
        manifest = json.loads((developer.path / "models" / "bundle" / "manifest.json").read_text())
        labels = inspect_image(image).labels
        assert labels["io.mlcd.model-hash"] == manifest["model_hash"]
        assert labels["org.opencontainers.image.revision"] == head

        assert "staging: blue is live" in run.log("deploy-staging")
        record = json.loads((developer.path / "models" / "bundle" / "examples.json").read_text())["records"][
            0
        ]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            json.dumps(record).encode(),
            {"content-type": "application/json"},
        )
        answer = json.load(urllib.request.urlopen(request, timeout=10))
        assert answer["model"] == {"hash": manifest["model_hash"], "git_commit": head}
    finally:
        PodmanBackend("staging", tmp_path / "staging", port).teardown()
        podman("rmi", "--force", image, check=False)


def test_reproduce_against_an_s3_remote_pushes_on_main_and_pulls_on_a_merge_request(
    gitlab: GitlabCiLocal, s3
):
    import boto3

    credentials = {"AWS_ACCESS_KEY_ID": "ci-key", "AWS_SECRET_ACCESS_KEY": "ci-secret"}
    client = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1", **_boto(credentials))
    client.create_bucket(Bucket="mlcd-ci")
    variables = {
        **credentials,  # masked CI/CD variables in GitLab
        "AWS_DEFAULT_REGION": "us-east-1",
        "DVC_REMOTE_URL": "s3://mlcd-ci/dvc",
        "DVC_REMOTE_ENDPOINT_URL": s3.url,
    }
    main = gitlab.run("reproduce", variables={**variables, "CI_COMMIT_BRANCH": "main"})
    assert main.results == {"reproduce": "PASS"}, main.explain()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="mlcd-ci", MaxKeys=1000)["Contents"]]
    assert any(k.startswith("dvc/files/md5/") for k in keys) and any(k.startswith("dvc/runs/") for k in keys)
    assert "ci-secret" not in main.log("reproduce")

    mr = gitlab.run("reproduce", variables={**variables, **merge_request()}, unset=MR_UNSET)
    assert mr.results == {"reproduce": "PASS"}, mr.explain()
    log = mr.log("reproduce")
    assert log.count("didn't change, skipping") == 6, "outputs were not pulled from S3"
    assert "outputs and run-cache pushed" not in log


def _mlflow_runs(url: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("mlcd")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
    }
