"""The page `dvc plots show` writes, opened in headless Chromium for a classifier and a regressor.

With Vega's scripts (the same versions the page names, from npm instead of the CDN) every plot
that fits the task is drawn and the one that does not says so, with no "Invalid specification";
without them (no network, as here) every plot says where the PNGs are instead of staying blank.
"""

import re
import subprocess
from pathlib import Path

import pytest

from ..ci.tools import chromium, vega_scripts
from ..helpers import Repo, clone_repo

pytestmark = pytest.mark.e2e

PLOTS = ("ROC", "Precision-recall", "Confusion_matrix", "Predicted_vs_actual")
FITS = {
    "classification": {"ROC", "Precision-recall", "Confusion_matrix"},
    "regression": {"Predicted_vs_actual"},
}


@pytest.fixture(scope="module")
def regression_repo(reproduced_repo: Repo, tmp_path_factory) -> Repo:
    """The four keys README names switch the project to a regressor (sklearn's diabetes)."""
    repo = clone_repo(reproduced_repo, tmp_path_factory.mktemp("regression") / "repo")
    repo.set_params(
        **{
            "data.source": "sklearn:diabetes",
            "data.schema": "data/schemas/diabetes.yaml",
            "train.task": "regression",
            "train.estimator": "ridge",
        }
    )
    repo.dvc("repro")
    return repo


def render(repo: Repo, out: Path, local_scripts: bool) -> tuple[str, str]:
    """(the DOM Chromium built from the page, what it logged)."""
    repo.dvc("plots", "show", "-o", str(out))
    page = out / "index.html"
    if local_scripts:
        html = page.read_text()
        for name, path in vega_scripts().items():
            html = html.replace(f"https://cdn.jsdelivr.net/npm/{name}", path.as_uri())
        page.write_text(html)
    done = subprocess.run(
        [
            str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={out / 'profile'}", "--allow-file-access-from-files",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def plot_div(dom: str, plot: str) -> str:
    """The DOM from the plot's own div to the next plot's (vega-embed nests divs inside it)."""
    starts = sorted((match.start(), name) for name in PLOTS for match in re.finditer(f'id="{name}"', dom))
    where = [i for i, (_, name) in enumerate(starts) if name == plot]
    assert where, f"no div for {plot}"
    i = where[0]
    return dom[starts[i][0] : starts[i + 1][0] if i + 1 < len(starts) else len(dom)]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_plot_loads_for_every_task(task, reproduced_repo, regression_repo, tmp_path):
    repo = reproduced_repo if task == "classification" else regression_repo
    dom, log = render(repo, tmp_path / "plots", local_scripts=True)
    assert "Invalid specification" not in dom + log
    for plot in PLOTS:
        div = plot_div(dom, plot)
        if plot in FITS[task]:
            assert "<canvas" in div or "<svg" in div, f"{plot} was not drawn: {div[:300]}"
        else:
            assert "not drawn for this model's task" in div, div[:300]


def test_offline_every_plot_says_where_the_pngs_are(reproduced_repo, tmp_path):
    dom, _ = render(reproduced_repo, tmp_path / "plots", local_scripts=False)
    for plot in FITS["classification"]:
        assert "the Vega scripts could not be loaded" in plot_div(dom, plot)
        assert "metrics/figures" in plot_div(dom, plot)
