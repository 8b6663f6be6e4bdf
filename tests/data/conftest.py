"""A real git + DVC project for the data commands' tests (`dvc init` takes seconds: made once per
module, copied per test)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ..helpers import copy_params_and_data


@pytest.fixture(scope="module")
def dvc_template(tmp_path_factory):
    """git and dvc initialised once (`dvc init` takes seconds); each test gets a copy."""
    project = copy_params_and_data(tmp_path_factory.mktemp("data-use") / "project")
    params = project / "params.yaml"
    # A comment the edit must keep (CI's test repos rewrite params.yaml without the project's own).
    params.write_text(params.read_text().replace("data:\n", "data:  # where the data comes from\n", 1))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=project, check=True)
    return project


@pytest.fixture
def dvc_project(dvc_template, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(dvc_template, project, symlinks=True)
    monkeypatch.chdir(project)
    return project
