"""The Jenkinsfile: linted by npm-groovy-lint, and running the same mlcd commands per stage as
.gitlab-ci.yml. No Jenkins server runs here (README "Set up in Jenkins" says what that leaves out)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ..helpers import PROJECT_ROOT, run
from . import tools
from .gitlab_ci_local import GitlabCiLocal

pytestmark = [pytest.mark.ci, pytest.mark.needs_node]

JENKINSFILE = PROJECT_ROOT / "Jenkinsfile"
# Jenkins stage -> GitLab job. Setup is GitLab's before_script (`bash .ci/setup`) in every job.
JOB_OF_STAGE = {
    "Check": "check",
    "Reproduce": "reproduce",
    "Report": "report",
    "Build": "build",
    "Deploy staging": "deploy-staging",
    "Deploy production": "deploy-production",
    "Release": "release",
    "Retrain": "retrain",
}
_MLCD = re.compile(r"^\s*-?\s*(mlcd\s[^#\n]*?)\s*(?:#.*)?$", re.M)


def _commands(text: str) -> list[str]:
    """`mlcd ...` command lines, with shell line continuations joined and spacing normalised."""
    joined = re.sub(r"\\\\?\n\s*", " ", text)
    return [" ".join(found.split()) for found in _MLCD.findall(joined)]


def jenkins_commands() -> dict[str, list[str]]:
    text = JENKINSFILE.read_text()
    functions = {
        name: _commands(body)
        for name, body in re.findall(r"^void (\w+)\([^)]*\) \{\n(.*?)^\}", text, re.S | re.M)
    }
    stages = re.split(r"^\s*stage\('([^']+)'\) \{", text, flags=re.M)
    found = {}
    for name, body in zip(stages[1::2], stages[2::2], strict=True):
        commands = _commands(body)
        for function, inside in functions.items():
            if re.search(rf"\b{function}\(", body):
                commands += inside
        found[name] = commands
    return found


def expanded_gitlab_ci(gitlab_ci_local: Path, tmp_path: Path) -> dict:
    """.gitlab-ci.yml as GitLab expands it (extends, !reference), in a scratch repo with a GitLab origin."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(PROJECT_ROOT / ".gitlab-ci.yml", project)
    run(["git", "init", "-q", "-b", "main"], project)
    run(["git", "remote", "add", "origin", "https://gitlab.example.com/group/mlcd.git"], project)
    return GitlabCiLocal(gitlab_ci_local, project).preview()


def gitlab_commands(gitlab_ci_local: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Each job's mlcd commands (before_script and script), from the CI file as GitLab expands it."""
    expanded = expanded_gitlab_ci(gitlab_ci_local, tmp_path)
    found = {}
    for job in JOB_OF_STAGE.values():
        lines = [*expanded[job].get("before_script", []), *expanded[job]["script"]]
        found[job] = [command for line in lines for command in _commands(str(line))]
    return found


def test_the_jenkinsfile_passes_npm_groovy_lint(tmp_path):
    lint = tools.npm_groovy_lint()
    shutil.copy2(JENKINSFILE, tmp_path / "Jenkinsfile")  # the linter writes its cache beside the file
    # --noserver: by default the linter leaves a CodeNarc Java server running after it exits.
    done = subprocess.run(
        [str(lint), "--noserver", "--failon", "warning", "--output", "txt", "--no-insight", "Jenkinsfile"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]  # --failon warning: none


def test_each_stage_runs_the_same_mlcd_commands_as_its_gitlab_job(gitlab_ci_local_binary, tmp_path):
    jenkins = jenkins_commands()
    gitlab = gitlab_commands(gitlab_ci_local_binary, tmp_path)
    assert set(jenkins) == {"Setup", *JOB_OF_STAGE}
    for stage, job in JOB_OF_STAGE.items():
        assert jenkins[stage] == gitlab[job], (stage, job)
    assert "mlcd ci reproduce --dotenv build.env --metrics-report metrics.txt" in jenkins["Reproduce"]
    assert jenkins["Deploy production"][-2].startswith("mlcd deploy")  # the parser saw the function


def test_the_tag_patterns_match_the_gitlab_rules(gitlab_ci_local_binary, tmp_path):
    """The registration pattern is the same regular expression in both files."""
    version = re.search(r"String semanticVersion\(\) \{\n\s*return /(.+)/\n", JENKINSFILE.read_text())
    assert version is not None
    rules = expanded_gitlab_ci(gitlab_ci_local_binary, tmp_path)["release"]["rules"]
    assert any(rule.get("if") == f"$CI_COMMIT_TAG =~ /^model@{version.group(1)}$/" for rule in rules)


def test_production_rolls_out_as_a_canary_in_both(gitlab_ci_local_binary, tmp_path):
    expanded = expanded_gitlab_ci(gitlab_ci_local_binary, tmp_path)
    assert expanded["deploy-production"]["variables"]["MLCD_DEPLOY_STRATEGY"] == "canary"
    assert "MLCD_DEPLOY_STRATEGY" not in expanded["deploy-staging"].get("variables", {})  # bluegreen
    text = JENKINSFILE.read_text()
    assert "environmentName == 'production' ? 'canary' : 'bluegreen'" in text
    assert '"MLCD_DEPLOY_STRATEGY=${strategy}"' in text
