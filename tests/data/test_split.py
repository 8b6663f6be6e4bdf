import numpy as np
import pyarrow as pa

from mlcd.config import PreprocessParams
from mlcd.data.schema import DatasetSchema
from mlcd.data.split import MISSING_CATEGORY, split_indices, tidy


def test_split_is_stratified_disjoint_complete_and_seeded():
    codes = np.array([0] * 700 + [1] * 300)
    params = PreprocessParams(test_size=0.2, seed=3)
    train, test = split_indices(codes, len(codes), params)
    assert len(test) == 200 and len(train) == 800
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(1000))
    assert (codes[test] == 1).sum() == 60  # 30 % of the test set, as in the data
    again = split_indices(codes, len(codes), params)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    other = split_indices(codes, len(codes), PreprocessParams(test_size=0.2, seed=4))
    assert not np.array_equal(other[1], test)


def test_regression_split_without_classes():
    train, test = split_indices(None, 50, PreprocessParams(test_size=0.2, seed=1))
    assert len(test) == 10 and sorted([*train, *test]) == list(range(50))


def test_tidy_keeps_schema_columns_and_names_missing_categories():
    schema = DatasetSchema.model_validate(
        {
            "target": {"name": "y", "classes": ["0", "1"]},
            "features": [{"name": "x"}, {"name": "city", "dtype": "category", "nullable": True}],
        }
    )
    table = pa.table({"x": [1.0, 2.0], "city": ["a", None], "y": [0, 1], "extra": [9, 9]})
    tidied = tidy(table, schema)
    assert tidied.column_names == ["x", "city", "y"]
    assert tidied["city"].to_pylist() == ["a", MISSING_CATEGORY]
    assert tidied["y"].to_pylist() == ["0", "1"]


def test_preprocess_loads_neither_pandas_nor_scikit_learn():
    import subprocess
    import sys

    code = (
        "import sys, mlcd.data.split; print([m for m in ('pandas', 'sklearn', 'scipy') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
