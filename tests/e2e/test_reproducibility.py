"""The committed dvc.lock on a runner of another CPU family, and experiments that run their own code.

Another CPU is simulated by forcing OpenBLAS kernels (OPENBLAS_CORETYPE): a user-set kernel
is respected by mlcd's pin, so the stages really compute with it.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from mlcd.blas import CORETYPE_VARIABLE, can_run, cpu_flags
from mlcd.ci.remote import URL_VARIABLE

from ..helpers import Repo, committed_text, new_repo

pytestmark = pytest.mark.e2e


def reproduce(repo: Repo, *args: str) -> tuple[int, str]:
    """Exit code and everything printed (verdicts are for people: they go to stderr)."""
    done: subprocess.CompletedProcess[str] = repo.mlcd("ci", "reproduce", *args, check=False)
    return done.returncode, done.stdout + done.stderr


VERDICTS = ("identical:", "equivalent:", "different:")


def verdict_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(VERDICTS)]


def force_kernel(monkeypatch: pytest.MonkeyPatch, kernel: str) -> None:
    if not can_run(kernel, cpu_flags()):
        # SIGILL otherwise: SkylakeX needs AVX-512, which not every machine of this kind has.
        pytest.skip(f"this CPU cannot run the {kernel} kernel")
    monkeypatch.setenv(CORETYPE_VARIABLE, kernel)


@pytest.mark.parametrize("kernel", ["Sandybridge", "SkylakeX"])
def test_another_kernel_is_float_noise_judged_equivalent_by_content(repo_copy, monkeypatch, kernel):
    """Every stage re-run under another kernel, compared with the committed outputs in the DVC cache."""
    head = repo_copy.run("git", "rev-parse", "HEAD").stdout
    force_kernel(monkeypatch, kernel)
    code, output = reproduce(repo_copy, "--force")
    assert code == 0, output
    assert f"BLAS kernel: {kernel}" in output
    lines = verdict_lines(output)
    model = next(line for line in lines if "models/model.skops" in line)
    assert model.startswith("equivalent: stage 'train' models/model.skops: predictions on 113 test rows")
    assert any("models/bundle/model.onnx" in line for line in lines)
    assert "dvc.lock verified, equivalent" in output
    assert repo_copy.run("git", "rev-parse", "HEAD").stdout == head  # the commit is never touched


def test_fresh_clone_on_another_kernel_passes_and_says_what_it_could_not_compare(tmp_path, monkeypatch):
    """An empty remote, no cache: the model itself has no committed copy, its metrics and plots do (git).

    As a default-branch runner of another CPU family with a remote of its own to fill, it pushes
    its equivalent outputs and says whose bytes the remote now holds."""
    repo = new_repo(tmp_path / "fresh")
    remote = tmp_path / "runner-remote"
    monkeypatch.setenv(URL_VARIABLE, str(remote))
    force_kernel(monkeypatch, "Prescott")
    code, output = reproduce(repo, "--push")
    assert code == 0, output
    assert "pushed this runner's equivalent outputs" in output
    assert (remote / "runs").is_dir() and (remote / "files" / "md5").is_dir()
    assert "dvc.lock verified, equivalent" in output
    # Which curve's thresholds move in their last bits depends on the kernel; some always do.
    noise = r"^equivalent: stage 'evaluate' metrics/plots/\S+\.json: values differ by up to"
    assert re.search(noise, output, re.M)
    assert "output(s) not compared, no committed copy here" in output
    assert "Seed or sort" not in output


def test_the_pin_reproduces_the_committed_files_byte_for_byte(reproduced_repo):
    """What the README's first command does on this machine, judged against HEAD, not the work tree."""
    tracked = reproduced_repo.run("git", "ls-files", "dvc.lock", "metrics").stdout.split()
    assert "dvc.lock" in tracked and "metrics/plots/roc.json" in tracked
    for path in tracked:
        assert (reproduced_repo.path / path).read_text() == committed_text(path), path


def test_a_truly_non_deterministic_stage_is_different(repo_copy, monkeypatch):
    monkeypatch.delenv(CORETYPE_VARIABLE, raising=False)
    train = repo_copy.path / "src" / "mlcd" / "modeling" / "train.py"
    fit = "\n                pipeline.fit(x, y)\n"  # a whole line: its indent is the block's
    assert train.read_text().count(fit) == 1
    # Unseeded noise on the coefficients: every run a new model, far beyond float noise.
    noise = "                pipeline.steps[-1][1].coef_ += np.random.default_rng().normal(0, 0.5, 30)\n"
    train.write_text(train.read_text().replace(fit, fit + noise))
    repo_copy.dvc("repro")
    repo_copy.commit("train with unseeded noise")
    code, output = reproduce(repo_copy, "--force")
    assert code == 2, output
    assert "differs from the committed dvc.lock by more than float noise" in output
    drift = "different: stage 'train' models/model.skops: predictions on 113 test rows differ by up to"
    assert drift in output


def test_a_queued_experiment_runs_its_own_code(repo_copy, monkeypatch):
    """Queue a code change, revert the workspace, run the queue: the experiment's code ran."""
    train = repo_copy.path / "src" / "mlcd" / "modeling" / "train.py"
    original = train.read_text()
    marker = '"estimator": params.estimator, '
    assert marker in original
    train.write_text(original.replace(marker, marker + '"experiment": "queued code", '))
    changed_md5 = repo_copy.run("md5sum", str(train)).stdout.split()[0]
    repo_copy.dvc("exp", "run", "--queue", "--name", "own-code")
    repo_copy.run("git", "checkout", "--", str(train))
    assert train.read_text() == original
    repo_copy.dvc("queue", "start")
    deadline = time.monotonic() + 300
    while "own-code" not in repo_copy.dvc("exp", "ls", "--name-only").stdout:
        status = repo_copy.dvc("queue", "status").stdout
        assert "Failed" not in status, repo_copy.dvc("queue", "logs", "own-code", check=False).stdout
        assert time.monotonic() < deadline, f"the queued experiment did not finish:\n{status}"
        time.sleep(2)
    repo_copy.dvc("queue", "stop", "--kill", check=False)
    repo_copy.dvc("exp", "apply", "own-code")
    assert '"experiment": "queued code"' in (repo_copy.path / "metrics" / "train.json").read_text()
    lock = repo_copy.lock()
    train_dep = next(d for d in lock["stages"]["train"]["deps"] if d["path"] == "src/mlcd/modeling/train.py")
    assert train_dep["md5"] == changed_md5  # the lock names the code that ran
