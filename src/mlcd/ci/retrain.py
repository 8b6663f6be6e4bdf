"""`mlcd retrain`: the loop's last step, run by the CI job a drift or performance alert triggers.

Logged answers that got a label since the last retrain become rows of the dataset (a new DVC
version of data.source), the pipeline runs, and the result goes up as a branch and a merge
request whose note is the usual report plus the drift report of the traffic. The gate decides
as for any merge request; nothing is promoted.

What was taken is recorded in data/retrained.json (the newest label's time), committed with the
data, so the next retrain appends only labels that arrived after it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mlcd.ci.reproduce import dvc
from mlcd.config import ProjectPaths, load_params
from mlcd.console import info, warn
from mlcd.data.append import Appended, append_rows
from mlcd.data.schema import load_schema
from mlcd.data.split import MISSING_CATEGORY
from mlcd.errors import MonitorError
from mlcd.files import read_json, write_json
from mlcd.git import git, require_clean
from mlcd.report.gitlab import NotPostedError, Target, open_merge_request, post, target_from_env
from mlcd.report.monitoring import SUMMARY_FILE, monitor_report
from mlcd.report.run import run_report
from mlcd.serve.log_reader import LABELLED_AT, dataset_rows, labelled, read_predictions
from mlcd.serve.log_shipping import local_logs

MARK_FILE = "data/retrained.json"
BRANCH_PREFIX = "retrain/"
# Where the branch is pushed: a URL with a token that may push (GitLab's job token may not), or a
# remote's name. README "Closing the loop" shows the GitLab form.
PUSH_URL_VARIABLE = "MLCD_RETRAIN_PUSH_URL"
ALERT_LABELS_SHOWN = ("feature", "metric", "severity")


@dataclass(frozen=True)
class Retrained:
    branch: str
    appended: Appended
    labels_until: datetime
    merge_request: int | None
    said: str  # what happened to the merge request and its note


def retrain(
    root: Path,
    log_location: str | Path,
    target_branch: str = "main",
    push: bool = True,
    alerts: Path | None = None,
) -> Retrained:
    """From the logs in a directory, or under an s3:// location (`mlcd serve --log-remote`)."""
    with local_logs(log_location) as log_dir:
        return _retrain(root, log_dir, target_branch, push, alerts)


def _retrain(root: Path, log_dir: Path, target_branch: str, push: bool, alerts: Path | None) -> Retrained:
    paths = ProjectPaths(root)
    fired = firing_alerts(alerts) if alerts else []
    params = load_params(paths.params)
    require_clean(root)
    since = _labels_until(root)
    logged = read_predictions(log_dir, None)
    joined = labelled(log_dir, logged.rows)
    if since is not None:
        joined = joined[joined[LABELLED_AT] > pd.Timestamp(since)]
    if joined.empty:
        after = f" after {since:%Y-%m-%d %H:%M:%S} UTC ({MARK_FILE})" if since else ""
        raise MonitorError(f"{log_dir} holds no labelled answers{after}; POST /feedback brings labels")
    schema = load_schema(paths.schema(params.data))
    rows = dataset_rows(joined, schema, MISSING_CATEGORY)
    drift_out = Path(tempfile.mkdtemp(prefix="mlcd-retrain-drift-"))
    drift_note = _drift_note(paths, log_dir, drift_out)
    until = pd.Timestamp(joined[LABELLED_AT].max()).to_pydatetime()
    branch = f"{BRANCH_PREFIX}{datetime.now(UTC):%Y%m%d-%H%M%S}"
    git(root, "checkout", "-q", "-b", branch)
    appended = append_rows(rows, schema, params, paths)
    write_json(root / MARK_FILE, {"labels_until": until.isoformat(), "rows": appended.rows_added})
    info(f"appended {appended.rows_added:,} labelled rows to {appended.source}; running the pipeline")
    dvc(root, "repro")
    git(root, "add", "-A")
    title = f"Retrain on {appended.rows_added:,} labelled rows served until {until:%Y-%m-%d %H:%M} UTC"
    git(root, "commit", "-q", "-m", title)
    if not push:
        return Retrained(branch, appended, until, None, "not pushed (--no-push)")
    dvc(root, "push", "--run-cache")
    git(root, "push", "-q", os.environ.get(PUSH_URL_VARIABLE) or "origin", f"HEAD:refs/heads/{branch}")
    why = f"Triggered by {', '.join(fired)}.\n\n" if fired else ""
    iid, said = _merge_request(root, branch, target_branch, title, appended, why + drift_note, drift_out)
    return Retrained(branch, appended, until, iid, said)


def firing_alerts(payload: Path) -> list[str]:
    """The firing alerts of Alertmanager's webhook body (GitLab's TRIGGER_PAYLOAD file), by name
    and labels: MlcdFeatureDrift (feature=mean_radius)."""
    try:
        body = read_json(payload)
        alerts = [a for a in body["alerts"] if a.get("status") == "firing"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MonitorError(f"{payload} is not Alertmanager's webhook JSON ({exc})") from None
    named = []
    for alert in alerts:
        labels = dict(alert.get("labels") or {})
        name = labels.pop("alertname", "an alert")
        extra = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k in ALERT_LABELS_SHOWN)
        named.append(f"{name} ({extra})" if extra else name)
    return named


def _labels_until(root: Path) -> datetime | None:
    mark = root / MARK_FILE
    return datetime.fromisoformat(read_json(mark)["labels_until"]) if mark.is_file() else None


def _drift_note(paths: ProjectPaths, log_dir: Path, out: Path) -> str:
    """The drift report of the served model's traffic, or why there is none."""
    if not paths.bundle.is_dir():
        return "No drift report: the served model's bundle is not here (`dvc pull package` first)."
    try:
        monitor_report(paths.bundle, log_dir, out)
    except MonitorError as reason:
        return f"No drift report: {reason}"
    return (out / SUMMARY_FILE).read_text(encoding="utf-8")


def _merge_request(
    root: Path, branch: str, target_branch: str, title: str, appended: Appended, drift: str, drift_out: Path
) -> tuple[int | None, str]:
    try:
        target = target_from_env(merge_request_needed=False)
    except NotPostedError as reason:
        warn(f"pushed {branch}; no merge request opened: {reason}")
        return None, f"pushed; no merge request: {reason}"
    data = (
        f"{appended.rows_added:,} labelled rows appended to `{appended.source}` "
        f"({appended.rows_before:,} before)"
        + (", which now holds the built-in table too" if appended.switched else "")
        + "."
    )
    iid = open_merge_request(target, branch, target_branch, title, f"{data}\n\n{drift}")
    report_out = Path(tempfile.mkdtemp(prefix="mlcd-retrain-report-"))
    usual = run_report(root, f"origin/{target_branch}", report_out, gate=False, post_note=False)
    images = sorted(report_out.glob("*.png")) + sorted(drift_out.glob("*.png"))
    local = f"{usual.markdown}\n\n{data}\n\n{drift}"

    def body(links: dict[str, str]) -> str:
        text = local
        for stem, url in links.items():
            text = text.replace(f"]({stem}.png)", f"]({url})")
        return text

    try:
        done = post(Target(target.url, target.project, iid, target.token), images, body)
    except NotPostedError as reason:
        return iid, f"opened merge request !{iid}; its note was not posted: {reason}"
    return iid, f"opened merge request !{iid} with note {done.note_id}"
