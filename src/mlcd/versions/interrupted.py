"""The mark a workspace restore leaves while HEAD and the outputs are half moved.

Light on purpose (no dvc import): every mlcd command reads it first, so a restore killed
between `git checkout` and the end of `dvc checkout` is named by whatever runs next.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from mlcd.files import read_json, write_json
from mlcd.git import short

# Written before a workspace restore moves HEAD and removed once it is done: a restore killed in
# between (HEAD detached, the outputs half checked out) is found by the next mlcd command.
IN_PROGRESS = Path(".dvc") / "tmp" / "mlcd-restore-in-progress.json"


@dataclass(frozen=True)
class Interrupted:
    previous: str  # the commit HEAD was at
    branch: str | None  # the branch HEAD was on, if any
    target: str

    def advice(self) -> str:
        where = f"branch {self.branch} ({short(self.previous)})" if self.branch else short(self.previous)
        return (
            f"an `mlcd restore` of {short(self.target)} was interrupted: HEAD and the outputs may be half "
            f"moved from {where}. Go back with `mlcd restore --abort`, or finish it by running the same "
            "restore again"
        )


def interrupted(root: Path) -> Interrupted | None:
    try:
        return Interrupted(**read_json(root / IN_PROGRESS))
    except (OSError, ValueError, TypeError):
        return None


def mark_in_progress(root: Path, restore: Interrupted) -> None:
    """Whole or not at all: a restore killed while writing the mark must not leave one nobody reads."""
    write_json(root / IN_PROGRESS, asdict(restore))
