"""Wall time of a merge-request pipeline for a params-only change, per job, run by gitlab-ci-local.

The developer has run `dvc repro` and `dvc push --run-cache`, as the README asks, so CI
pulls outputs and run-cache instead of training. Jobs run as shell jobs on this
machine (see tests/ci/gitlab_ci_local.py) with a warm uv cache, as on a runner
with GitLab's cache restored; the image build is excluded (target: <= 2 min in all).

    uv run python benchmarks/ci_pipeline.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._project import project_copy
from tests.ci.gitlab_ci_local import (
    GitlabCiLocal,
    merge_request,
    open_merge_request,
    publish,
    shared_uv_cache,
)
from tests.ci.tools import gitlab_ci_local
from tests.helpers import Repo
from tests.report import fake_gitlab

JOBS = ("check", "reproduce", "report")


def main() -> None:
    binary = gitlab_ci_local()
    with tempfile.TemporaryDirectory(prefix="mlcd-bench-ci-") as tmp:
        base = Path(tmp)
        repo = Repo(project_copy(base / "repo", everything=True))
        repo.dvc("repro")  # the committed dvc.lock is fresh: this only makes outputs
        repo.dvc("push", "--run-cache")
        publish(repo, base / "origin.git")
        open_merge_request(repo, "smaller-c", **{"train.logistic_regression.C": 0.5})

        fake = fake_gitlab.FakeGitLab()
        server, url = fake_gitlab.start(fake)
        gitlab = GitlabCiLocal(binary, repo.path, shared_uv_cache())
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
