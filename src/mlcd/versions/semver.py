"""Release versions: MAJOR.MINOR.PATCH, tagged as `<artifact>@vMAJOR.MINOR.PATCH` (GTO's format)."""

from __future__ import annotations

import re
from typing import NamedTuple

from mlcd.errors import VersionError


class Semver(NamedTuple):
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Semver:
        match = re.fullmatch(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", text.strip())
        if not match:
            raise VersionError(
                f"{text!r} is not a version: use MAJOR.MINOR.PATCH, e.g. 1.4.0 (a leading v is fine)"
            )
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"
