"""The CLI in process (typer's CliRunner): errors a user can cause are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mlcd import errors
from mlcd.cli import DEBUG_VARIABLE, app
from mlcd.errors import MissingToolError
from mlcd.system import require_programs

from ..helpers import PROJECT_ROOT

runner = CliRunner()


def _empty_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No program found on PATH; Debian's sbin fallback has no podman either.
    monkeypatch.setenv("PATH", str(tmp_path))


def test_a_missing_system_program_names_the_package_and_exits_2(monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    result = runner.invoke(app, ["image", "smoke", "localhost/mlcd-model:none"])
    assert result.exit_code == 2, result.output
    assert "error: running containers needs podman, not found on PATH" in result.output
    assert "`apt-get install podman`" in result.output
    assert "Traceback" not in result.output


def test_require_programs_lists_every_missing_package_once(monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    with pytest.raises(MissingToolError, match=r"`apt-get install buildah podman`"):
        require_programs({"podman": "podman", "podman-remote": "podman", "buildah": "buildah"}, "a build")
    (tmp_path / "podman").write_text("#!/bin/sh\n")
    (tmp_path / "podman").chmod(0o755)
    assert require_programs({"podman": "podman"}, "a build") == {"podman": str(tmp_path / "podman")}


def test_traceback_flag_and_debug_variable_show_the_full_error(monkeypatch, tmp_path):
    _empty_path(monkeypatch, tmp_path)
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)
    result = runner.invoke(app, ["--traceback", "image", "smoke", "x"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "MissingToolError" in result.output
    assert "error: running containers needs podman" in result.output
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    assert "Traceback" in runner.invoke(app, ["image", "smoke", "x"]).output
    monkeypatch.delenv(DEBUG_VARIABLE)
    assert "Traceback" not in runner.invoke(app, ["image", "smoke", "x"]).output  # the flag did not stick


@pytest.mark.parametrize(
    ("module", "extra", "command"),
    [("uvicorn", "serve", ["serve", "--bundle", "."]), ("sklearn", "pipeline", ["train"])],
)
def test_a_missing_optional_extra_is_one_line_naming_it(tmp_path, module, extra, command):
    """A fresh process where importing the extra's module fails exactly as if it were not installed."""
    (tmp_path / "params.yaml").write_text("{}\n")
    script = (
        f"import sys; sys.modules[{module!r}] = None; sys.argv = ['mlcd', *{command!r}]; "
        "from mlcd.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: this command needs mlcd's `{extra}` extra ({module} is not installed): "
        f"run `uv sync --extra {extra}` in a checkout, or `pip install 'mlcd[{extra}]'`"
    ], done.stderr


def _command_paths() -> list[list[str]]:
    import typer.main

    def walk(group, prefix: list[str]) -> list[list[str]]:
        paths = [prefix]
        for name, command in getattr(group, "commands", {}).items():
            paths += walk(command, [*prefix, name])
        return paths

    return walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "mlcd")
def test_help_shows_conventional_metavars(path):
    """UPPER metavars (TEXT, PATH, REF) as in click and DVC, not typer 0.27's <str>, <bool> and {REF}."""
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage
    typed = [word for word in ("<str>", "<path>", "<bool>", "<int>", "<float>") if word in result.output]
    assert not typed, f"{' '.join(path)} --help shows {typed}"


def test_help_keeps_placeholders_in_defaults():
    result = runner.invoke(app, ["image", "build", "--help"], terminal_width=200)
    assert "TEXT" in result.output and "PATH" in result.output
    assert "localhost/mlcd-model:<model" in result.output  # rich's markdown mode dropped <...> placeholders


def test_readme_documents_every_error_of_the_family():
    """README "Exit codes and errors" is the one place the tree is written down; it must stay whole."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Exit codes and errors", 1)[1].split("\n## ", 1)[0]
    family = [
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.MlcdError)
    ]
    assert len(family) > 10 and section.count("\nMlcdError ") == 1
    missing = [name for name in family if name != "MlcdError" and f"── {name} " not in section]
    assert not missing, f"README's exception tree lacks {missing}"


def test_undeploy_of_a_kubernetes_environment_says_how_instead(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl is called before the refusal
    result = runner.invoke(app, ["undeploy", "--environment", "staging", "--backend", "kubernetes"])
    assert result.exit_code == 2
    assert "kubectl delete namespace mlcd-staging" in result.output


def test_task_is_a_choice_typer_checks(tmp_path):
    result = runner.invoke(
        app, ["data", "use", str(tmp_path / "t.csv"), "--target", "y", "--task", "ranking"]
    )
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # rich wraps the box's lines
    assert "'ranking' is not one of 'classification', 'regression'" in said
    assert "Traceback" not in result.output


def test_the_project_is_named_one_way_and_params_are_read_from_it(tmp_path):
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text((PROJECT_ROOT / "dvc.yaml").read_text())
    shown = runner.invoke(app, ["params", "--repo", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "estimator: logistic_regression" in shown.output
    (tmp_path / "params.yaml").write_text("train: {estimator: svm}\n")
    refused = runner.invoke(app, ["params", "--repo", str(tmp_path)])
    assert refused.exit_code == 2 and "train.estimator" in refused.output


def _commands(group, prefix="mlcd"):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_every_command_on_a_project_takes_it_as_repo():
    # rollback, undeploy and deploy status act on an environment's recorded state, not on a project.
    without = {"mlcd rollback", "mlcd undeploy", "mlcd deploy status"}
    for name, command in _commands(typer.main.get_command(app)):
        has_repo = "repo" in {param.name for param in command.params}
        assert has_repo or name in without, f"{name} has no --repo"


def test_every_command_module_stays_small():
    package = PROJECT_ROOT / "src" / "mlcd" / "cli"
    sizes = {path.name: len(path.read_text().splitlines()) for path in package.glob("*.py")}
    assert max(sizes.values()) < 300, sizes
