"""What every command shares: the one `error:` line for errors a user can fix, the project root
option, and how a mirror's outcome is said.

Heavy libraries are imported inside commands so `mlcd --help` stays fast and a serving install
need not carry the training stack.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.markup import escape

from mlcd.config import PARAMS_FILE, Params, ProjectPaths, load_params
from mlcd.console import console
from mlcd.dvcfiles import blank_lock_advice, remove_stale_leftovers
from mlcd.errors import MlcdError
from mlcd.extras import install_hint, missing_extra

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_VARIABLE = "MLCD_DEBUG"

# The one way to name the project: its root, where dvc.yaml and params.yaml are. Every path a
# command reads or writes by default (params, the bundle, schemas) is under it.
RootOption = Annotated[
    Path, typer.Option("--repo", metavar="PATH", help="the project's root (its git repository).")
]
BundleOption = Annotated[
    Path | None,
    typer.Option(metavar="PATH", help="a model bundle directory [the project's models/bundle]."),
]


def bundle_in(root: Path, bundle: Path | None) -> Path:
    """An explicit --bundle as given, else the project's own."""
    return bundle if bundle is not None else ProjectPaths(root).bundle


def setup(root: Path) -> tuple[Params, ProjectPaths]:
    """The project's params (checked) and paths."""
    return load_params(root / PARAMS_FILE), ProjectPaths(root)


class _Invocation:
    traceback = False  # --traceback of the current invocation (set by the app callback)


def set_traceback(wanted: bool) -> None:
    _Invocation.traceback = wanted


def _debugging() -> bool:
    return _Invocation.traceback or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def fail(message: str, exit_code: int) -> NoReturn:
    if _debugging():
        console.print_exception(show_locals=False)
    # Escaped: messages quote user input and commands such as pip install 'mlcd[serve]'.
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(exit_code)


def _is_dvc_error(exc: Exception) -> bool:
    """DVC's own errors (without importing dvc, which a serving install lacks): a message, not a bug."""
    return any(
        cls.__name__ == "DvcException" and cls.__module__ == "dvc.exceptions" for cls in type(exc).__mro__
    )


def reports_errors(command: F) -> F:
    """Turn what a user can fix into one `error:` line and exit 2 (README "Exit codes").

    An MlcdError prints its message; a module of an optional extra that is not installed
    names the extra. Anything else is a bug and shows its traceback. `--traceback` (or
    MLCD_DEBUG=1) prints the traceback of the errors above too.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MlcdError as exc:
            fail(str(exc), exc.exit_code)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" writing {exc.filename}" if exc.filename else ""
            fail(
                f"no space left on the device{where}: free some (`df -h .`), then run it again; "
                "outputs are written whole or not at all, so nothing half-written was kept",
                MlcdError.exit_code,
            )
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc)
            if extra is None:
                raise
            module = (exc.name or "").partition(".")[0]
            fail(
                f"this command needs mlcd's `{extra}` extra ({module} is not installed): "
                f"{install_hint(extra)}",
                MlcdError.exit_code,
            )
        except Exception as exc:
            if not _is_dvc_error(exc):
                raise
            advice = blank_lock_advice(Path())
            fail(f"dvc: {str(exc).strip()}" + (f" ({advice})" if advice else ""), MlcdError.exit_code)

    return wrapper  # type: ignore[return-value]


def warn_about_interrupted_work(root: Path) -> None:
    """Every command first says so when an earlier one was killed halfway (README "Reliability")."""
    from mlcd.versions.interrupted import interrupted

    remove_stale_leftovers(root)
    if (pending := interrupted(root)) is not None:
        console.print(f"[yellow]warning:[/] {escape(pending.advice())}", highlight=False)
    if (advice := blank_lock_advice(root)) is not None:
        console.print(f"[yellow]warning:[/] {escape(advice)}", highlight=False)


def say_mirrored(outcome: tuple[bool, str] | None) -> None:
    """A mirror's outcome (tracking.mlflow_bridge.mirror): done in green, failed as a warning."""
    if outcome is not None:
        done, line = outcome
        console.print(f"[green]{escape(line)}[/]" if done else f"[yellow]warning:[/] {escape(line)}")
