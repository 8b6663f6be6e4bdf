"""xgboost.dask on a LocalCluster with a memory_limit per worker, beside XGBoost in one process
(issue 24: XGBoost on data larger than the workers' memory). Not an mlcd path: mlcd trains XGBoost
in one process; this measures what the distributed path would give.

Run: uv run python benchmarks/xgboost_dask.py ROWS MEMORY_LIMIT [--one-process]
e.g. 1000000 1GB --one-process; 6000000 1GB

Synthetic rows (mlcd's own generator) written as one Parquet file per 250,000-row group, read with
dask.dataframe, trained with xgboost.dask (hist, 100 rounds, depth 6, one thread per worker) and
scored on 200,000 held-out rows; with --one-process the same training on all rows in this process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _project import ROOT

PARAMS = {
    "tree_method": "hist",
    "objective": "binary:logistic",
    "max_depth": 6,
    "eta": 0.3,
    "nthread": 1,
    "max_bin": 256,
    "seed": 42,
}
ROUNDS = 100
TARGET = "diagnosis"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", type=int)
    parser.add_argument("memory_limit", help="per worker, e.g. 1GB")
    parser.add_argument("--one-process", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import dask
    import dask.dataframe as dd
    import pyarrow.parquet as pq
    import xgboost as xgb
    import xgboost.dask as dxgb
    from distributed import Client, wait
    from sklearn.metrics import accuracy_score, roc_auc_score

    from mlcd.cluster import loopback_cluster
    from mlcd.data.sources import write_synthetic

    folder = Path(tempfile.mkdtemp(prefix="mlcd-xgb-dask-"))
    data, test, parts = folder / "train.parquet", folder / "test.parquet", folder / "parts"
    write_synthetic(data, args.rows, 42)
    write_synthetic(test, 200_000, 7)
    parts.mkdir()
    whole = pq.ParquetFile(data)
    for group in range(whole.num_row_groups):
        pq.write_table(whole.read_row_group(group), parts / f"part-{group:04d}.parquet")
    print(f"{args.rows:,} rows, {data.stat().st_size / 1e9:.2f} GB of Parquet", flush=True)
    held_out = pq.read_table(test).to_pandas()
    x_test = held_out.drop(columns=TARGET).to_numpy("float32")
    y_test = (held_out[TARGET] == "malignant").to_numpy()

    # dask-expr fuses small Parquet partitions per column selection: one partition per file instead.
    dask.config.set({"dataframe.parquet.minimum-partition-size": 1})
    started = time.perf_counter()
    with (
        loopback_cluster(2, memory_limit=args.memory_limit) as cluster,
        Client(cluster) as client,
    ):
        frame = dd.read_parquet(str(parts), blocksize=None)
        x = frame.drop(columns=TARGET).astype("float32")
        y = (frame[TARGET] == "malignant").astype("int8")
        x, y = client.persist([x, y])  # co-located: xgboost.dask refuses X and y parts on different workers
        wait([x, y])
        matrix = dxgb.DaskQuantileDMatrix(client, x, y, max_bin=PARAMS["max_bin"])
        booster = dxgb.train(client, PARAMS, matrix, num_boost_round=ROUNDS)["booster"]
    seconds = time.perf_counter() - started
    dask_scores = booster.inplace_predict(x_test)
    auc, accuracy = roc_auc_score(y_test, dask_scores), accuracy_score(y_test, dask_scores > 0.5)
    where = f"xgboost.dask, 2 workers x {args.memory_limit}"
    print(f"{where}: {seconds:.1f} s, AUC {auc:.6f}, accuracy {accuracy:.6f}")
    if args.one_process:
        started = time.perf_counter()
        train = pq.read_table(data).to_pandas()
        labels = (train[TARGET] == "malignant").to_numpy()
        features = train.drop(columns=TARGET).to_numpy("float32")
        matrix_here = xgb.QuantileDMatrix(features, labels, max_bin=PARAMS["max_bin"])
        del train
        scores = xgb.train(PARAMS, matrix_here, num_boost_round=ROUNDS).inplace_predict(x_test)
        differ = int(((scores > 0.5) != (dask_scores > 0.5)).sum())
        print(
            f"one process: {time.perf_counter() - started:.1f} s, AUC {roc_auc_score(y_test, scores):.6f}, "
            f"accuracy {accuracy_score(y_test, scores > 0.5):.6f}; "
            f"{differ:,} of {len(y_test):,} labels differ"
        )


if __name__ == "__main__":  # LocalCluster's worker processes spawn and import this file again
    main()
