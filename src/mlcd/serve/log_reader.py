"""Reading what the server logged, for the offline report and `mlcd retrain`: the prediction log's
closed files for one model since a time, and the feedback log's labels joined to their answers.

Only closed (`.parquet`) files are read: the open stream belongs to a live writer. The logs'
column names are owned by prediction_log.py and feedback.py; this module only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from mlcd.data.schema import DatasetSchema
from mlcd.errors import MonitorError
from mlcd.serve import feedback, prediction_log
from mlcd.serve.rotating_log import closed_files

# The column the joined truth lands in: the log's "label" or "value".
TRUTH_COLUMNS = ("label", "value")
LABELLED_AT = "labelled_at"


@dataclass(frozen=True)
class Logged:
    rows: pd.DataFrame  # the prediction log's rows for the model, oldest first
    files: int
    other_models: int  # rows answered by another model (left out)


def read_predictions(directory: Path, model_hash: str | None, since: datetime | None = None) -> Logged:
    """Every closed prediction-log row of `model_hash` (None: of any model) at or after `since`."""
    import pyarrow.parquet as pq

    if not directory.is_dir():
        raise MonitorError(f"{directory} is not a directory; pass the --log-dir the server wrote to")
    files = prediction_log.logged_files(directory)
    if not files:
        raise MonitorError(
            f"{directory} holds no closed prediction log (predictions-*.parquet); a file closes "
            "hourly, at 32 MiB and when the server stops"
        )
    frames, other = [], 0
    for path in files:
        try:
            frame = pq.read_table(path).to_pandas()
        except Exception as exc:  # a file someone else wrote or damaged: name it
            raise MonitorError(f"{path} is not a readable prediction log ({exc}); move it aside") from exc
        if since is not None:
            frame = frame[frame["time"] >= pd.Timestamp(since)]
        mine = frame["model_hash"] == model_hash if model_hash else pd.Series(True, index=frame.index)
        other += int((~mine).sum())
        if mine.any():
            frames.append(frame[mine])
    rows = (
        pd.concat(frames, ignore_index=True).sort_values("time", kind="stable") if frames else pd.DataFrame()
    )
    return Logged(rows=rows.reset_index(drop=True), files=len(files), other_models=other)


def labelled(directory: Path, predictions: pd.DataFrame) -> pd.DataFrame:
    """The logged rows that have a label, with the label (or value) in a "label" (or "value")
    column and when it arrived in LABELLED_AT; a row labelled twice keeps its latest label."""
    import pyarrow.parquet as pq

    files = closed_files(directory, feedback.PREFIX)
    if not files or predictions.empty:
        return predictions.iloc[0:0]
    labels = pd.concat([pq.read_table(path).to_pandas() for path in files], ignore_index=True)
    truth = next(name for name in TRUTH_COLUMNS if name in labels.columns)
    latest = labels.sort_values("time", kind="stable").drop_duplicates(["request_id", "row"], keep="last")
    latest = latest.rename(columns={"time": LABELLED_AT})[["request_id", "row", truth, LABELLED_AT]]
    joined = predictions.merge(latest, on=["request_id", "row"], how="inner")
    return joined.reset_index(drop=True)


def dataset_rows(joined: pd.DataFrame, schema: DatasetSchema, missing_text: str) -> pd.DataFrame:
    """Labelled log rows as the dataset's own columns: features as the model received them (numbers
    in float32's precision, a missing text level as missing again) and the target."""
    if schema.datetimes:
        raise MonitorError(
            f"datetime features ({', '.join(schema.datetimes)}) are logged as their parts and cannot "
            "be rebuilt into rows; add labelled rows to the source by hand"
        )
    truth = next(name for name in TRUTH_COLUMNS if name in joined.columns)
    rows = pd.DataFrame(index=joined.index)
    for name in schema.feature_names:
        logged = joined[f"input.{name}"]
        rows[name] = logged.mask(logged == missing_text) if name in schema.categorical else logged
    rows[schema.target.name] = joined[truth]
    return rows
