"""Wall time of a merge-request pipeline for a params-only change, per job, run by gitlab-ci-local.

The developer has run `dvc repro` and `dvc push --run-cache`, as the README asks, so CI
pulls outputs and run-cache instead of training. Jobs run as shell jobs on this
machine (see tests/ci/gitlab_ci_local.py) with a warm uv cache, as on a runner
with GitLab's cache restored; the image build is excluded (target: <= 2 min in all).

    uv run python benchmarks/ci_pipeline.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._project import project_copy, sh
from tests.ci.gitlab_ci_local import GitlabCiLocal, merge_request
from tests.ci.tools import gitlab_ci_local
from tests.report import fake_gitlab

JOBS = ("check", "reproduce", "report")


def developer_branch(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["logistic_regression"]["C"] = 0.5
    sh("git", "checkout", "-q", "-b", "smaller-c", cwd=repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "C=0.5", cwd=repo)
    sh("dvc", "push", "--run-cache", cwd=repo)


def main() -> None:
    binary = gitlab_ci_local()
    with tempfile.TemporaryDirectory(prefix="mlcd-bench-ci-") as tmp:
        base = Path(tmp)
        repo = project_copy(base / "repo", everything=True)
        sh("dvc", "repro", cwd=repo)  # the committed dvc.lock is fresh: this only makes outputs
        sh("dvc", "push", "--run-cache", cwd=repo)
        sh("git", "init", "-q", "--bare", "-b", "main", str(base / "origin.git"), cwd=base)
        sh("git", "remote", "add", "origin", str(base / "origin.git"), cwd=repo)
        sh("git", "push", "-q", "-u", "origin", "main", cwd=repo)
        sh("git", "remote", "set-head", "origin", "main", cwd=repo)
        developer_branch(repo)

        fake = fake_gitlab.FakeGitLab()
        server, url = fake_gitlab.start(fake)
        uv_cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout
        gitlab = GitlabCiLocal(binary, repo, {"UV_CACHE_DIR": uv_cache.strip(), "UV_LINK_MODE": "hardlink"})
        variables = {
            **merge_request(fake.merge_request),
            "DVC_REMOTE_URL": str(base / "mlcd-dvc-remote"),
            "CI_SERVER_URL": url,
            "CI_PROJECT_ID": fake.project,
            "GITLAB_TOKEN": "bench",
        }
        started = time.perf_counter()
        run = gitlab.run(*JOBS, variables=variables, unset=("CI_COMMIT_BRANCH",))
        wall = time.perf_counter() - started
        server.shutdown()
        if run.results != dict.fromkeys(JOBS, "PASS"):
            raise SystemExit(run.explain() + "\n" + "\n".join(run.log(job)[-3000:] for job in JOBS))

    print("| MR pipeline job (params-only change, run-cache pushed) | wall time |")
    print("|---|---:|")
    for job in JOBS:
        print(f"| {job} | {run.durations[job]} |")
    print(f"| **pipeline** (check runs beside reproduce -> report) | **{wall:.0f} s** |")
    print("\nimage build excluded; target <= 120 s")


if __name__ == "__main__":
    main()
