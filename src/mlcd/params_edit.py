"""Change values in params.yaml in place, keeping its comments, order and layout.

params.yaml is a file people read: its comments say what each key takes. Dumping it
again with a YAML library would drop them, so a value is replaced on its own line.
The result is parsed and validated before it is written (atomically), so a bad edit
leaves the file as it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mlcd.config import parse_params
from mlcd.errors import ConfigError

_INDENT = 2  # params.yaml nests by two spaces


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return str(text).removesuffix("\n...").strip()


def _key_line(lines: list[str], dotted: str) -> int | None:
    """Index of the line holding `dotted`'s value, found by walking the indented sections."""
    keys = dotted.split(".")
    start, end = 0, len(lines)
    for depth, key in enumerate(keys):
        pattern = re.compile(rf"^{' ' * (depth * _INDENT)}{re.escape(key)}:(\s|$)")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), None)
        if found is None:
            return None
        start = found + 1
        child_indent = (depth + 1) * _INDENT
        end = next(
            (
                i
                for i in range(start, len(lines))
                if lines[i].strip()
                and not lines[i].startswith(" " * child_indent)
                and not lines[i].startswith("#")
            ),
            len(lines),
        )
        if depth == len(keys) - 1:
            return found
    return None


def set_values(text: str, values: dict[str, Any]) -> str:
    """`text` with each dotted key's value replaced; the comment after a value stays."""
    lines = text.splitlines()
    for dotted, value in values.items():
        index = _key_line(lines, dotted)
        if index is None:
            raise ConfigError(f"params.yaml has no key {dotted}: add it by hand, then run the command again")
        line = lines[index]
        head, _, rest = line.partition(":")
        comment = ""
        if match := re.search(r"\s+#.*$", rest):
            comment = match.group(0)
        lines[index] = f"{head}: {_scalar(value)}{comment}"
    return "\n".join(lines) + "\n"


def checked_edit(path: Path, values: dict[str, Any]) -> str:
    """The params file at `path` with dotted keys set, or a ConfigError if the result would not validate."""
    new_text = set_values(path.read_text(encoding="utf-8"), values)
    parse_params(yaml.safe_load(new_text), origin=str(path))
    return new_text
