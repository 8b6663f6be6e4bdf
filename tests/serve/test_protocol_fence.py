"""serve/protocol.py subclasses uvicorn's private HttpToolsProtocol: fail clearly if it changes."""

import inspect
from importlib.metadata import version

from uvicorn.protocols.http import httptools_impl

from mlcd.serve.protocol import USED_UVICORN_NAMES, GuardedHttpToolsProtocol


def test_the_private_uvicorn_names_the_guard_uses_are_there():
    missing = [
        name
        for name in USED_UVICORN_NAMES
        if not callable(getattr(httptools_impl.HttpToolsProtocol, name, None))
    ]
    assert not missing, (
        f"uvicorn {version('uvicorn')} changed HttpToolsProtocol (no {missing}): "
        "review serve/protocol.py against it, then widen the uvicorn pin in pyproject.toml"
    )
    assert set(httptools_impl.STATUS_LINE) >= {408, 431, 503}, "uvicorn's STATUS_LINE table changed"


def test_uvicorn_still_builds_protocols_with_the_arguments_the_guard_passes_on():
    # uvicorn's Server calls the factory with config, server_state and app_state as keywords.
    wanted = {"config", "server_state", "app_state"}
    taken = set(inspect.signature(httptools_impl.HttpToolsProtocol.__init__).parameters)
    assert wanted <= taken, f"uvicorn {version('uvicorn')} builds HttpToolsProtocol differently: {taken}"
    assert "limits" in inspect.signature(GuardedHttpToolsProtocol.__init__).parameters


def test_onnxruntime_still_has_the_compiled_run_the_model_calls(built_project):
    """serve/model.py calls the session's compiled run (`_sess.run`) without the Python wrapper's
    per-call checks; if onnxruntime drops it, the model falls back to the public run, slower."""
    import numpy as np

    from mlcd.serve.model import BundleModel
    from mlcd.serve.payload import to_batch

    model = BundleModel(built_project / "models" / "bundle")
    compiled = getattr(model.session, "_sess", None)
    assert compiled is not None and model._run == compiled.run, (
        f"onnxruntime {version('onnxruntime')} has no InferenceSession._sess.run: serve/model.py now "
        "uses the public run; review it"
    )
    batch = to_batch(model.examples.records, model.layout, 1000)
    feeds = model.feeds(batch.numbers, batch.texts)
    fast = model._run(model.output_names, feeds, None)
    public = model.session.run(model.output_names, feeds)
    for ours, theirs in zip(fast, public, strict=True):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
