"""The bad-file catalogue: each file a team might bring that would crash later is one clear error now.

Every case runs the stage's own function (ingest or validate) in a project directory and
asserts the message and that the stage left no output, partial or whole.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcd.config import ProjectPaths, parse_params
from mlcd.data.sources import run_ingest
from mlcd.data.validation_partitions import run_validate
from mlcd.errors import ConfigError, DataValidationError, SourceError

CSV = "data/external/table.csv"


def small_table(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "größe (cm)": rng.normal(170, 10, rows).round(4),
            "city": rng.choice(["Zürich", "Genève", "Köln"], rows),
            "label": np.where(np.arange(rows) % 3 == 0, "yes", "no"),
        }
    )


def schema_for(project: Path, frame: pd.DataFrame, **target) -> str:
    import yaml

    from mlcd.data.schema import infer_schema, schema_to_yaml

    body = yaml.safe_load(schema_to_yaml(infer_schema(frame, "label")))
    body["target"].update(target)
    path = project / "data" / "schemas" / "table.yaml"
    path.write_text(yaml.safe_dump(body))
    return "data/schemas/table.yaml"


def ingest(project: Path, **data) -> ProjectPaths:
    params = parse_params({"data": {"source": CSV, **data}})
    paths = ProjectPaths(project)
    run_ingest(params.data, paths)
    return paths


def refused_ingest(project: Path, content: bytes, source: str = CSV, **data) -> str:
    (project / source).write_bytes(content)
    with pytest.raises(SourceError) as caught:
        ingest(project, source=source, **data)
    assert not ProjectPaths(project).raw_data.exists()
    assert not list((project / "data").rglob("*.tmp*"))
    return str(caught.value)


def test_latin1_text_names_the_encoding_setting_and_then_reads(project):
    content = small_table().to_csv(index=False).encode("latin-1")
    message = refused_ingest(project, content)
    assert "is not utf-8 text (byte 0x" in message and "set data.encoding" in message
    ingest(project, encoding="latin-1")
    assert "größe (cm)" in pd.read_parquet(ProjectPaths(project).raw_data).columns


def test_a_semicolon_file_names_the_delimiter_setting_and_then_reads(project):
    content = small_table().to_csv(index=False, sep=";").encode()
    message = refused_ingest(project, content)
    assert "looks ';'-delimited; set data.delimiter: \";\"" in message
    ingest(project, delimiter=";")
    assert pd.read_parquet(ProjectPaths(project).raw_data).shape == (60, 3)


def _xlsx_like() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_xlsx_like(), "is not CSV text but a zip archive (an Excel .xlsx?)"),
        (gzip.compress(b"a,b\n1,2\n"), "is not CSV text but gzip-compressed: name it .csv.gz"),
    ],
    ids=["xlsx renamed .csv", "gzip renamed .csv"],
)
def test_a_file_that_is_not_what_its_name_says(project, content, expected):
    assert expected in refused_ingest(project, content)


def test_compressed_csv_reads(project):
    source = "data/external/table.csv.gz"
    (project / source).write_bytes(gzip.compress(small_table().to_csv(index=False).encode()))
    paths = ingest(project, source=source)
    assert pd.read_parquet(paths.raw_data).shape == (60, 3)


def test_a_source_outside_data_external_is_refused(project):
    for source in ("elsewhere.csv", "/tmp/table.csv", "data/external/../table.csv"):
        with pytest.raises(ConfigError, match="is not under data/external/, the folder the ingest stage"):
            parse_params({"data": {"source": source}})


def _validated(project: Path, frame: pd.DataFrame, overrides: dict | None = None, **target) -> None:
    frame.to_csv(project / CSV, index=False)
    schema = schema_for(project, frame.dropna(subset=["label"]), **target)
    raw = {"data": {"source": CSV, "schema": schema}, **(overrides or {})}
    params = parse_params(raw)
    paths = ProjectPaths(project)
    run_ingest(params.data, paths)
    run_validate(params, paths)


def validation_problems(project: Path, frame: pd.DataFrame, overrides: dict | None = None) -> list[str]:
    with pytest.raises(DataValidationError) as caught:
        _validated(project, frame, overrides)
    assert not ProjectPaths(project).data_profile.exists()
    return caught.value.problems


def test_values_beyond_float32_fail_validation_naming_the_column(project):
    frame = small_table()
    frame.loc[5, "größe (cm)"] = 1e308
    (problem,) = validation_problems(project, frame)
    assert problem.startswith("column 'größe (cm)': 1 values beyond float32's range")
    assert "extreme 1e+308, data rows 6" in problem and "rescale the column" in problem


def test_too_few_rows_for_the_split_and_cross_validation(project):
    (problem,) = validation_problems(project, small_table(5), {"train": {"cv_folds": 5}})
    assert "too few rows per class for the split: 'yes' has 2, 'no' has 3" in problem
    assert "preprocess.test_size 0.2 and train.cv_folds 5 need 6 per class" in problem
    advice = "add rows, or set train.cv_folds 0 with preprocess.test_size between 0.26 and 0.74"
    assert advice in problem
    # The advice points the right way: both ends of the range split, and the stage after it runs.
    for test_size in (0.26, 0.74):
        _validated(
            project, small_table(5), {"train": {"cv_folds": 0}, "preprocess": {"test_size": test_size}}
        )
        ProjectPaths(project).data_profile.unlink()
    (raising,) = validation_problems(project, small_table(5), {"preprocess": {"test_size": 0.8}})
    assert "or set preprocess.test_size between 0.26 and 0.74" in raising


def test_advice_names_fewer_folds_when_fewer_folds_suffice(project):
    (problem,) = validation_problems(project, small_table(12), {"train": {"cv_folds": 5}})
    assert "'yes' has 4" in problem and "add rows, or set train.cv_folds 3" in problem
    _validated(project, small_table(12), {"train": {"cv_folds": 3}})


def test_a_class_with_one_row_fails_validation(project):
    frame = small_table()
    frame.loc[0, "label"] = "maybe"
    (problem,) = validation_problems(project, frame)
    assert "'maybe' has 1" in problem and "need 3 per class" in problem


def test_a_missing_target_names_the_key_that_drops_it(project):
    frame = small_table()
    frame.loc[[3, 4], "label"] = None
    (problem,) = validation_problems(project, frame)
    assert "target 'label': 2 missing values (data rows 4, 5)" in problem
    assert "set target.drop_missing: true" in problem
    _validated(project, frame, drop_missing=True)
    profile = pd.read_json(ProjectPaths(project).data_profile, typ="series")
    assert profile["dropped_missing_target"] == 2 and profile["rows"] == 60


def test_data_and_a_schema_for_other_data_say_so_first(project):
    """The README's switch to diabetes, with data.schema still naming breast cancer."""
    params = parse_params({"data": {"source": "sklearn:diabetes"}})
    paths = ProjectPaths(project)
    run_ingest(params.data, paths)
    with pytest.raises(DataValidationError) as caught:
        run_validate(params, paths)
    first_line = str(caught.value).splitlines()[0]
    assert first_line.startswith(
        "the data and data.schema (data/schemas/breast_cancer.yaml) plainly disagree: 31 of the schema's 31"
    )
    assert "`mlcd data use FILE --target COL`" in first_line
    assert not paths.data_profile.exists()
