"""tracking/: the mirror never takes a release down, and results are gathered without MLflow (fast)."""

from mlcd.errors import TrackingError
from mlcd.tracking.mlflow_bridge import URI_VARIABLE, mirror


def test_without_mlflow_set_up_nothing_is_mirrored(monkeypatch):
    monkeypatch.delenv(URI_VARIABLE, raising=False)
    assert mirror(lambda: "never called") is None


def test_a_failing_mirror_step_is_a_warning_never_an_error(monkeypatch):
    monkeypatch.setenv(URI_VARIABLE, "http://127.0.0.1:9")

    def refused() -> str:
        raise TrackingError("MLflow at http://127.0.0.1:9 does not answer")

    def broken() -> str:
        raise RuntimeError("boom")

    assert mirror(lambda: "MLflow: done") == (True, "MLflow: done")
    done, line = mirror(refused)
    assert not done and "does not answer" in line and "mlcd mlflow sync" in line
    done, line = mirror(broken)
    assert not done and "RuntimeError: boom" in line
