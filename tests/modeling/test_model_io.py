import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from mlcd.errors import ModelError
from mlcd.modeling.model_io import load_model, save_model


def _forest():
    x, y = load_breast_cancer(return_X_y=True)
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y), x


def test_same_model_gives_same_bytes_with_fixed_timestamps(tmp_path):
    model, x = _forest()
    save_model(model, tmp_path / "a.skops")
    # A different object with equal content gets different Python ids.
    save_model(
        RandomForestClassifier(n_estimators=5, random_state=0).fit(x, model.predict(x)),
        tmp_path / "b.skops",
    )
    save_model(model, tmp_path / "c.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "c.skops").read_bytes()
    infos = zipfile.ZipFile(tmp_path / "a.skops").infolist()
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)


def test_round_trip_predicts_the_same(tmp_path):
    model, x = _forest()
    save_model(model, tmp_path / "m.skops")
    np.testing.assert_array_equal(load_model(tmp_path / "m.skops").predict_proba(x), model.predict_proba(x))


def test_an_xgboost_model_gives_the_same_bytes_and_loads(tmp_path):
    """skops writes a booster's bytes under a random UUID name: renamed in order, the file is stable
    (before, every save of the same XGBoost model gave other bytes, so another hash in dvc.lock)."""
    import xgboost

    x, y = load_breast_cancer(return_X_y=True)
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(x, y)
    save_model(model, tmp_path / "a.skops")
    save_model(model, tmp_path / "b.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
    assert "bytes-0.bin" in zipfile.ZipFile(tmp_path / "a.skops").namelist()
    loaded = load_model(tmp_path / "a.skops")
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def shift(values):
    return values + 1.0


def test_unreviewed_types_are_refused(tmp_path):
    x, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(FunctionTransformer(shift), RandomForestClassifier(n_estimators=2)).fit(x, y)
    save_model(model, tmp_path / "m.skops")
    with pytest.raises(ModelError, match=r"types mlcd does not trust: tests\.modeling\.test_model_io\.shift"):
        load_model(tmp_path / "m.skops")


def test_not_a_model_file(tmp_path):
    (tmp_path / "m.skops").write_bytes(b"\x80\x04pickle!")
    with pytest.raises(ModelError, match="is not a skops model file"):
        load_model(tmp_path / "m.skops")


def test_missing_model_says_how_to_make_it(tmp_path):
    with pytest.raises(ModelError, match="dvc repro train"):
        load_model(tmp_path / "none.skops")
