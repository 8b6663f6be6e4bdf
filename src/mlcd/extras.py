"""Optional extras (pyproject.toml): which import needs which, so a missing one is one clear line.

The base install runs `--help` and the small commands; `pipeline` adds the training
stack, `serve` the HTTP API. A command that imports a module of an extra that is not
installed raises ModuleNotFoundError deep inside; `missing_extra` turns that into
the name of the extra to install.
"""

from __future__ import annotations

# Top-level import names of the extras' distributions (python-gitlab is `gitlab`, etc.).
# onnxruntime is in both; `pipeline` is named because it brings everything a stage needs.
EXTRA_OF_MODULE: dict[str, str] = {
    **dict.fromkeys(
        (
            "dvc",
            "dvc_s3",
            "gitlab",
            "google",
            "matplotlib",
            "onnx",
            "onnxruntime",
            "pandas",
            "pyarrow",
            "skl2onnx",
            "sklearn",
            "skops",
        ),
        "pipeline",
    ),
    **dict.fromkeys(("orjson", "prometheus_client", "uvicorn"), "serve"),
    "mlflow": "mlflow",
    **dict.fromkeys(("dask", "distributed"), "dask"),
    **dict.fromkeys(("xgboost", "onnxmltools"), "xgboost"),
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra whose module `exc` failed to import, or None when it is not an extra's (a bug)."""
    top_level = (exc.name or "").partition(".")[0]
    return EXTRA_OF_MODULE.get(top_level)


def install_hint(extra: str) -> str:
    return f"run `uv sync --extra {extra}` in a checkout, or `pip install 'mlcd[{extra}]'`"
