"""Every error a user can cause is an MlcdError; anything else is a bug.

The CLI prints an MlcdError as one red line (plus its listed problems) and exits
with code 2, so messages here must say what is wrong *and* what to do about it.
README "Exit codes and errors" draws this tree (a test keeps the two in step).
"""

from __future__ import annotations


class MlcdError(Exception):
    """Base class: a problem with the user's input, config, data or environment."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"{self.message}\n{listed}"


class ConfigError(MlcdError):
    """params.yaml (or a schema file) is missing, malformed or out of range."""


class SourceError(MlcdError):
    """The data source named in params.yaml cannot be read."""


class DataValidationError(MlcdError):
    """The dataset breaks its schema; `problems` lists every violation found."""


class ModelError(MlcdError):
    """A model file cannot be trained, loaded, converted or trusted."""


class ParityError(ModelError):
    """The ONNX export does not reproduce the scikit-learn model's predictions."""


class BundleError(MlcdError):
    """A model bundle is missing files or does not match its manifest."""


class GitError(MlcdError):
    """A git command failed (not a repository, unknown revision, dirty workspace) or git is missing."""


class VersionError(MlcdError):
    """A release, version list or restore cannot proceed; nothing was changed."""


class MissingToolError(MlcdError):
    """A system program mlcd drives (podman, nginx, ...) is not installed; mlcd never installs one."""


class ContainerError(MlcdError):
    """Building, running or checking a container image failed."""


class PipelineError(MlcdError):
    """CI's reproduction of the pipeline disagrees with what the commit says, or cannot run."""


class DeployError(MlcdError):
    """A deploy or rollback did not happen; what was serving before still serves."""


class ServeError(MlcdError):
    """`mlcd serve` cannot listen where it was asked to (a busy port, a foreign address)."""


class TrackingError(MlcdError):
    """The MLflow tracking server is not configured, does not answer or refuses; git and DVC are unchanged."""


class ClusterError(MlcdError):
    """The Dask scheduler MLCD_DASK_SCHEDULER names cannot be reached, has no workers, runs other
    versions, or lost a worker while it held part of the work; nothing was written."""


class MonitorError(MlcdError):
    """The served model's logs cannot be read, hold nothing to report on, or their labelled rows
    do not fit the dataset's schema; nothing was written."""
