"""GitLab's `artifacts:reports:metrics` format: one `name value` line per metric.

The MR report writes the head's; the default branch's reproduce job writes its own, so GitLab's
metrics widget has main's values to compare an MR with. Both ask here.
"""

from __future__ import annotations

from typing import Any


def metrics_lines(metrics: dict[str, Any]) -> str:
    return "".join(f"{name} {value}\n" for name, value in metrics.items() if value is not None)
