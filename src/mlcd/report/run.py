"""`mlcd report`: compare the workspace with a base revision, write the report, gate, post."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlcd.config import (
    PARAMS_FILE,
    GateParams,
    ProjectPaths,
    load_params,
    params_yaml_from_text,
    parse_params,
)
from mlcd.console import info, stage, warn
from mlcd.errors import ConfigError
from mlcd.files import atomic_dir, dump_json
from mlcd.git import dirty_files, git, show_file
from mlcd.metrics_lines import metrics_lines
from mlcd.report import compare, render
from mlcd.report.gitlab import NotPostedError, post, target_from_env
from mlcd.report.sides import collect, measure_latency, resolve_base, set_aside_other_positive_class

REPORT = "report.md"
METRICS_REPORT = "metrics.txt"
SUMMARY = "report.json"


@dataclass(frozen=True)
class ReportResult:
    markdown: str
    rules: list[compare.Rule] | None
    out: Path
    posted: str  # what happened to the merge-request note, for the log

    @property
    def gate_failed(self) -> bool:
        return any(rule.passed is False for rule in self.rules or [])


def workspace_caveats(root: Path) -> str:
    """Warn when the head column is not a commit's outputs; the suffix for its label ("" when clean).

    The head is the workspace: uncommitted params next to metrics of an older `dvc repro`
    would be reported as if HEAD had produced both.
    """
    import dvc.repo

    changed = [line[3:] for line in dirty_files(root) if not line.startswith("??")]  # tracked files only
    with dvc.repo.Repo(str(root)) as repo:
        stale = sorted(name.split(":")[-1] for name in repo.status())
    if stale:
        warn(
            f"outputs are out of date for stage(s) {', '.join(stale)}: run `dvc repro` before the "
            "report, or it shows new params and data beside old metrics"
        )
    if changed:
        warn(
            f"uncommitted changes ({', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}): "
            "the head column is the workspace, not HEAD alone"
        )
        return " + uncommitted changes"
    return ""


GATE_CHANGED = "this MR changes the gate: applies after merge"


def gate_of_base(root: Path, base_sha: str, head_gate: GateParams) -> tuple[GateParams, str]:
    """The thresholds a change is judged by: the base's, so a merge request cannot loosen its own gate.

    The second value is "" or a note for the verdict: the head's gate differs (it applies once
    merged), or the base has no readable params.yaml (the head's gate is used, and said so).
    """
    origin = f"{PARAMS_FILE} at {base_sha[:8]}"
    try:
        base_gate = parse_params(
            params_yaml_from_text(show_file(root, base_sha, PARAMS_FILE) or "", origin), origin
        ).gate
    except ConfigError:
        return head_gate, f"the base {base_sha[:8]} has no valid {PARAMS_FILE}: judged by this change's gate"
    return base_gate, "" if base_gate == head_gate else GATE_CHANGED


def run_report(root: Path, base_ref: str | None, out: Path, gate: bool, post_note: bool) -> ReportResult:
    with stage("report") as log:
        params = load_params(ProjectPaths(root).params)
        base_sha, how = resolve_base(root, base_ref)
        with tempfile.TemporaryDirectory(prefix="mlcd-report-") as scratch:
            base = collect(root, "base", base_sha, Path(scratch))
            head = collect(root, "head", None, Path(scratch))
            measure_latency([base, head])
        set_aside_other_positive_class(base, head)
        head_commit = git(root, "rev-parse", "HEAD").strip()
        head_label = head_commit[:8] + workspace_caveats(root)
        rows = compare.metric_rows(base, head)
        gate_params, gate_note = gate_of_base(root, base_sha, params.gate)
        rules = compare.gate(rows, base, head, gate_params) if gate else None
        params_changed = compare.param_changes(base, head)
        data = compare.data_rows(base, head)

        def body(links: dict[str, str]) -> str:
            return render.markdown(
                base, head, head_label, how, rows, params_changed, data, rules, links, gate_note
            )

        with atomic_dir(out) as tmp:
            images = render.figures(base, head, tmp)
            local_links = {image.stem: image.name for image in images}
            markdown = body(local_links)
            (tmp / REPORT).write_text(markdown, encoding="utf-8")
            head_metrics = {row.name: row.head for row in rows}
            (tmp / METRICS_REPORT).write_text(metrics_lines(head_metrics), encoding="utf-8")
            summary = {
                "base": base_sha,
                "head": head_commit,
                "base_chosen_by": how,
                "metrics": {r.name: {"base": r.base, "head": r.head, "change": r.change} for r in rows},
                "params_changed": {k: {"base": b, "head": h} for k, b, h in params_changed},
                "gate": None if rules is None else [rule.__dict__ for rule in rules],
                "gate_note": gate_note,
                "missing": base.missing + head.missing,
            }
            (tmp / SUMMARY).write_text(dump_json(summary), encoding="utf-8")
        images = [out / image.name for image in images]
        posted = "no note posted (--no-post)"
        if post_note:
            try:
                done = post(target_from_env(), images, body)
                posted = f"{'created' if done.created else 'updated'} merge-request note {done.note_id}"
            except NotPostedError as reason:
                posted = f"not posted: {reason}"
        # A note that should have been posted and was not is worth a warning; --no-post is not.
        (warn if posted.startswith("not posted") else info)(posted)
        log.add(f"base {base_sha[:8]} ({how}) vs head {head_commit[:8]}: {len(rows)} metrics")
        log.add(f"{len(params_changed)} params changed; {len(images)} plots -> {out}/")
        return ReportResult(markdown, rules, out, posted)
