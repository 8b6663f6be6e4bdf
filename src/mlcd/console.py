"""Terminal output: one rich console on stderr, progress bars and stage summaries.

stdout stays free for machine-readable output; everything human goes to stderr.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False, soft_wrap=True)


def progress() -> Progress:
    """A progress display for long steps; transient so logs keep one line per step."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@dataclass
class StageLog:
    """Collects the facts a stage reports; printed as one summary line at the end."""

    name: str
    facts: list[str] = field(default_factory=list)

    def add(self, fact: str) -> None:
        self.facts.append(fact)


@contextmanager
def stage(name: str) -> Iterator[StageLog]:
    log = StageLog(name)
    started = time.perf_counter()
    yield log
    elapsed = time.perf_counter() - started
    details = "; ".join(log.facts)
    console.print(f"[bold green]{name}[/] {details} [dim]({elapsed:.2f} s)[/]")


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner for one long call with no countable steps (a model fit, an export)."""
    with console.status(message, spinner="dots"):
        yield


def info(message: str) -> None:
    console.print(f"[dim]{message}[/]")


def warn(message: str) -> None:
    """One warning line; the message is plain text (a column named "Year [month]" is not markup)."""
    console.print(f"[yellow]warning:[/] {escape(message)}")
