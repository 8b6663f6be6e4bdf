"""`mlcd report` in a temp repo with two commits: numbers, gate, missing base, GitLab notes."""

import json
import re
import shutil

import pytest
import yaml

from ..helpers import Repo, clone_repo

pytestmark = pytest.mark.e2e
HEAD_C = 0.005


@pytest.fixture(scope="module")
def two_commits(reproduced_repo, tmp_path_factory):
    repo = clone_repo(reproduced_repo, tmp_path_factory.mktemp("report") / "repo")
    # The copied dvc.lock is this code's: the repro left git nothing to commit, the copy is the base.
    assert repo.run("git", "status", "--porcelain").stdout == ""
    base = json.loads((repo.path / "metrics" / "metrics.json").read_text())
    repo.set_params(**{"train.logistic_regression.C": HEAD_C})
    repo.dvc("repro")
    repo.commit("stronger regularisation")
    head = json.loads((repo.path / "metrics" / "metrics.json").read_text())
    return repo, base, head


@pytest.fixture
def repo(two_commits, tmp_path) -> Repo:
    return clone_repo(two_commits[0], tmp_path / "repo")


def report(repo: Repo, *args: str, env: dict | None = None, check: bool = True):
    return repo.mlcd("report", "--out", "out", *args, check=check, env=env)


def set_gate(repo: Repo, **max_drop: float) -> None:
    repo.set_params(
        **{"gate.max_drop": max_drop, "gate.max_latency_increase": 20, "gate.max_size_increase": 20}
    )


def test_numbers_signs_marks_and_plots(repo, two_commits):
    _, base, head = two_commits
    done = report(repo, "--base", "HEAD~1", "--no-post")
    summary = json.loads((repo.path / "out" / "report.json").read_text())
    assert summary["base_chosen_by"] == "--base"
    for name in ("accuracy", "roc_auc", "log_loss", "f1"):
        row = summary["metrics"][name]
        assert (row["base"], row["head"]) == (base[name], head[name])
        assert row["change"] == pytest.approx(head[name] - base[name])
    assert summary["params_changed"] == {"train.logistic_regression.C": {"base": 1.0, "head": HEAD_C}}
    markdown = (repo.path / "out" / "report.md").read_text()
    assert markdown == done.stdout.rstrip("\n") or markdown in done.stdout
    assert markdown.startswith("<!-- mlcd-report -->")
    log_loss_change = head["log_loss"] - base["log_loss"]
    mark = "🔻 worse" if log_loss_change > 0 else "✅ better"
    assert (
        f"| log_loss (↓ better) | {base['log_loss']:.4f} | {head['log_loss']:.4f} | {log_loss_change:+.4f} |"
        in markdown
    )
    assert mark in markdown.split("log_loss (↓ better)")[1].split("\n")[0]
    assert f"| train.logistic_regression.C | 1.0 | {HEAD_C} |" in markdown
    assert "| rows | 569 | 569 |" in markdown
    assert "single-row predict, median ms" in markdown and "n/a" not in markdown.split("### Model bundle")[1]
    for png in ("roc.png", "precision_recall.png", "confusion_matrix.png"):
        assert (repo.path / "out" / png).stat().st_size > 5000
        assert f"]({png})" in markdown
    lines = (repo.path / "out" / "metrics.txt").read_text().splitlines()
    assert f"roc_auc {head['roc_auc']}" in lines
    # --no-post is what was asked for: said plainly, not as a warning.
    assert "no note posted (--no-post)" in done.stderr and "warning" not in done.stderr


def _worsened(base, head):
    """A metric the head made worse, and by how much (in its own units)."""
    from mlcd.config import HIGHER_IS_BETTER

    for name in ("roc_auc", "accuracy", "f1", "log_loss"):
        worse = (base[name] - head[name]) if HIGHER_IS_BETTER[name] else (head[name] - base[name])
        if worse > 0:
            return name, worse
    raise AssertionError(f"the head model is not worse on any metric: {base} {head}")


def base_with_gate(repo: Repo, **max_drop: float) -> str:
    """A commit on top of main~1 (the base) that sets the gate: the base's gate is the one that judges."""
    repo.run("git", "checkout", "-q", "main~1")
    set_gate(repo, **max_drop)
    repo.commit("gate on the target branch")
    sha = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    repo.run("git", "checkout", "-q", "main")
    return sha


def test_gate_trips_and_passes_at_the_threshold(repo, two_commits):
    _, base, head = two_commits
    name, worse = _worsened(base, head)
    strict = base_with_gate(repo, **{name: worse * 0.9})
    done = report(repo, "--base", strict, "--gate", "--no-post", check=False)
    assert done.returncode == 1
    assert f"gate failed: {name} " in done.stderr
    assert f"| {name} {'rise' if name == 'log_loss' else 'drop'} at most" in done.stdout
    assert "❌ fail" in done.stdout
    loose = base_with_gate(repo, **{name: worse * 1.1})
    done = report(repo, "--base", loose, "--gate", "--no-post")
    assert "✅ **gate passed**" in done.stdout


def test_missing_base_bundle_is_reported_and_the_rest_still_compared(repo):
    base_sha = repo.run("git", "rev-parse", "HEAD~1").stdout.strip()
    lock = yaml.safe_load(repo.run("git", "show", "HEAD~1:dvc.lock").stdout)
    bundle_md5 = lock["stages"]["package"]["outs"][0]["md5"]
    cache = repo.path / ".dvc" / "cache" / "files" / "md5"
    (cache / bundle_md5[:2] / bundle_md5[2:]).unlink()
    shutil.rmtree(repo.remote, ignore_errors=True)
    done = report(repo, "--base", "HEAD~1", "--no-post")
    assert (
        f"the model bundle models/bundle of commit {base_sha[:8]} is not in the DVC cache or remote"
    ) in done.stdout
    summary = json.loads((repo.path / "out" / "report.json").read_text())
    assert summary["metrics"]["roc_auc"]["base"] is not None


def test_merge_request_base_comes_from_ci_variables(repo):
    base_sha = repo.run("git", "rev-parse", "HEAD~1").stdout.strip()
    report(repo, "--no-post", env={"CI_MERGE_REQUEST_DIFF_BASE_SHA": base_sha})
    summary = json.loads((repo.path / "out" / "report.json").read_text())
    assert (summary["base"], summary["base_chosen_by"]) == (base_sha, "CI_MERGE_REQUEST_DIFF_BASE_SHA")


def test_outside_ci_the_base_is_the_merge_base_with_a_local_main(repo):
    """A feature branch two commits ahead of main: the base is where it left main, not HEAD~1."""
    fork_point = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    repo.run("git", "checkout", "-q", "-b", "feature")
    # Two commits outside the pipeline: which commit is the base is what is tested, not the diff
    # (a reproduced param change here cost a `dvc repro`, about 15 s).
    (repo.path / "NOTES.md").write_text("what to try next\n")
    repo.commit("notes")
    (repo.path / "NOTES.md").write_text("what to try next, and why\n")
    repo.commit("more notes")
    done = report(repo, "--no-post")
    summary = json.loads((repo.path / "out" / "report.json").read_text())
    assert (summary["base"], summary["base_chosen_by"]) == (fork_point, "merge-base with main")
    assert "warning" not in done.stderr  # committed and reproduced: nothing to warn about
    repo.run("git", "checkout", "-q", "main")  # on main itself: the previous commit
    report(repo, "--no-post")
    assert json.loads((repo.path / "out" / "report.json").read_text())["base_chosen_by"] == "HEAD~1"


def test_a_dirty_workspace_is_labelled_and_stale_metrics_are_warned_about(repo):
    repo.set_params(**{"train.logistic_regression.C": 0.5})  # not reproduced, not committed
    done = report(repo, "--base", "HEAD~1", "--no-post")
    assert "outputs are out of date for stage(s)" in done.stderr and "train" in done.stderr
    assert "uncommitted changes (params.yaml)" in done.stderr
    head = repo.run("git", "rev-parse", "--short=8", "HEAD").stdout.strip()
    markdown = (repo.path / "out" / "report.md").read_text()
    assert f"## mlcd model report: {head} + uncommitted changes vs base" in markdown


def test_first_run_creates_the_note_and_the_second_updates_it(repo, gitlab):
    fake, env = gitlab
    first = report(repo, "--base", "HEAD~1", env=env)
    assert "created merge-request note 100" in first.stderr
    second = report(repo, "--base", "HEAD~1", env=env)
    assert "updated merge-request note 100" in second.stderr
    assert list(fake.notes) == [100]
    methods = [(r.method, r.path.split("?")[0].rsplit("/", 1)[-1]) for r in fake.requests]
    assert methods.count(("POST", "notes")) == 1
    assert methods.count(("PUT", "100")) == 1
    assert len(fake.uploads) == 6  # three PNGs per run
    body = fake.notes[100]
    for url in fake.uploads[3:]:
        assert f"]({url})" in body
    assert all(r.headers.get("private-token") == "glpat-secret" for r in fake.requests)


def test_a_failure_to_post_keeps_the_report_and_the_exit_code(repo, gitlab):
    fake, env = gitlab
    fake.fail_with = 500
    done = report(repo, "--base", "HEAD~1", env=env)
    assert done.returncode == 0
    assert "warning: not posted:" in done.stderr
    assert "GitLab failed with 500" in done.stderr and "Traceback" not in done.stderr
    assert (repo.path / "out" / "report.md").read_text().startswith("<!-- mlcd-report -->")


def test_a_jenkins_merge_request_build_posts_the_same_note(repo, gitlab):
    """Jenkins' variables (Branch Source's CHANGE_*, the Jenkinsfile's GITLAB_URL/GITLAB_PROJECT)
    give the same base, the same note and the same GitLab requests as GitLab CI's."""
    fake, gitlab_env = gitlab
    repo.run("git", "checkout", "-q", "-b", "smaller-c")
    repo.run("git", "branch", "-f", "main", "HEAD~1")  # the MR targets main, one commit behind
    head = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    from_gitlab = report(repo, env={**gitlab_env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"})
    posted = [(r.method, r.path.split("?")[0]) for r in fake.requests]
    note = fake.notes[100]
    fake.notes.clear()
    fake.requests.clear()
    jenkins_env = {
        "JENKINS_URL": "http://jenkins.invalid/",
        "BRANCH_NAME": "MR-3",
        "CHANGE_ID": "3",
        "CHANGE_TARGET": "main",
        "CHANGE_BRANCH": "smaller-c",
        "GIT_COMMIT": head,
        "GITLAB_URL": gitlab_env["CI_SERVER_URL"],
        "GITLAB_PROJECT": gitlab_env["CI_PROJECT_ID"],
        "GITLAB_TOKEN": gitlab_env["GITLAB_TOKEN"],
        "MLCD_GITLAB_TIMEOUT": "1",
    }
    from_jenkins = report(repo, env=jenkins_env)
    assert "merge-base with main" in from_gitlab.stderr and "merge-base with main" in from_jenkins.stderr
    assert "created merge-request note 100" in from_jenkins.stderr
    (jenkins_note,) = fake.notes.values()
    # Upload URLs differ per upload, and latency per measurement; everything else is the same note.
    varying = re.compile(r"/uploads/[^)]+|^\| single-row predict.*$", re.M)
    assert varying.sub("", jenkins_note) == varying.sub("", note)
    assert [(r.method, r.path.split("?")[0]) for r in fake.requests] == posted


# Fault catalogue (README "Reliability"): a report never lies about its base, and GitLab's odd
# answers are warnings, never a traceback and never exit 1 (which means "the gate failed").


@pytest.mark.parametrize("where", ["--base", "CI_MERGE_REQUEST_DIFF_BASE_SHA"])
def test_a_base_that_does_not_resolve_is_an_error_not_a_fall_back(repo, where):
    missing = "0123456789abcdef0123456789abcdef01234567"
    if where == "--base":
        done = report(repo, "--base", missing, "--no-post", check=False)
    else:
        done = report(repo, "--no-post", env={"CI_MERGE_REQUEST_DIFF_BASE_SHA": missing}, check=False)
    assert done.returncode == 2, done.stderr
    assert f"{where} {missing!r} is not a commit in this clone" in done.stderr
    assert "GIT_DEPTH: 0" in done.stderr and "Traceback" not in done.stderr
    assert not (repo.path / "out").exists()


PAGE = b"<html><body>Sign in</body></html>"
HTML = (200, {"content-type": "text/html", "content-length": str(len(PAGE))}, PAGE)  # a proxy's page


def test_an_odd_answer_is_a_warning_never_a_traceback(repo, gitlab):
    fake, env = gitlab
    fake.raw = HTML
    done = report(repo, "--base", "HEAD~1", env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "warning: not posted: GitLab answered with something that is not its API's JSON" in done.stderr
    assert "Traceback" not in done.stderr
    assert (repo.path / "out" / "report.md").is_file()


def test_a_merge_request_cannot_loosen_its_own_gate(repo, two_commits):
    """The base's gate judges; the MR's own looser gate is shown and applies only after merge."""
    _, base, head = two_commits
    name, worse = _worsened(base, head)
    # The base gets a strict gate in its own commit; the head loosens it and regresses.
    strict_base = base_with_gate(repo, **{name: worse * 0.5})
    set_gate(repo, **{name: worse * 10})
    done = report(repo, "--base", strict_base, "--gate", "--no-post", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"gate failed: {name} " in done.stderr
    assert "this MR changes the gate: applies after merge" in done.stdout
    limit = f"{worse * 0.5:g}"
    assert f"at most {limit}" in done.stdout  # the base's threshold, not the MR's
    # Once merged, the looser gate is the base's own and passes the same change.
    repo.commit("looser gate")
    done = report(repo, "--base", "HEAD", "--gate", "--no-post", check=False)
    assert "this MR changes the gate" not in done.stdout
