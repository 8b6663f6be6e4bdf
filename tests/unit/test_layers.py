"""The floors of src/mlcd (README "Development"): a module may import its own floor or any below, never above.

Read from the source with ast, lazy imports inside functions included, so a shortcut taken
inside a function body is caught as well as one at the top of a file.
"""

import ast
from pathlib import Path

from ..helpers import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "mlcd"

# Top floor first. A room is a subpackage or a top-level module of mlcd.
FLOORS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"report", "tracking", "ci"},
    {"modeling", "versions", "deploy", "reproducibility"},
    {"data", "container", "serve"},
    {"dvcfiles", "params_edit", "provenance", "monitor"},
    {"config", "git", "bundle", "http_client", "system", "ci_variables", "metrics_lines", "cluster"},
    {"extras", "files", "datetimes", "console", "blas", "errors", "tolerance", "__init__"},
]
FLOOR_OF = {room: len(FLOORS) - depth for depth, rooms in enumerate(FLOORS) for room in rooms}


def _room(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_rooms(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module + "." + alias.name for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("mlcd.")}
    return found


def test_every_room_has_a_floor():
    rooms = {_room(path) for path in PACKAGE.rglob("*.py")}
    assert rooms <= set(FLOOR_OF), f"give these a floor in FLOORS: {sorted(rooms - set(FLOOR_OF))}"


def test_no_import_runs_up_a_floor():
    upward = [
        f"{path.relative_to(PACKAGE)} (floor {FLOOR_OF[_room(path)]}) "
        f"imports mlcd.{room} (floor {FLOOR_OF[room]})"
        for path in sorted(PACKAGE.rglob("*.py"))
        for room in _imported_rooms(path)
        if room in FLOOR_OF and FLOOR_OF[room] > FLOOR_OF[_room(path)]
    ]
    assert not upward, "\n".join(upward)
