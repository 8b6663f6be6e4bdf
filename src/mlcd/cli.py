"""The `mlcd` command line. Each command parses its options and calls one function.

Heavy libraries are imported inside commands so `mlcd --help` stays fast and a
serving install need not carry the training stack.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, cast

import typer
from rich.markup import escape

from mlcd.blas import pin_blas_kernel
from mlcd.ci_variables import IMAGE_REPO_VARIABLE
from mlcd.config import PARAMS_FILE, Params, ProjectPaths, load_params
from mlcd.console import console, warn
from mlcd.dvcfiles import blank_lock_advice, remove_stale_leftovers
from mlcd.errors import ConfigError, MlcdError
from mlcd.extras import install_hint, missing_extra

if TYPE_CHECKING:
    from mlcd.config import Task

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="mlcd",
    help=(
        "Continuous delivery for ML models. The pipeline stages below are what "
        "`dvc repro` runs (see dvc.yaml); run them by hand only to debug one stage."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)
schema_app = typer.Typer(help="Create and check dataset schemas (data/schemas/*.yaml).", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
data_app = typer.Typer(help="Point the pipeline at your own data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
image_app = typer.Typer(help="Build and smoke-test the model API image with podman.", no_args_is_help=True)
app.add_typer(image_app, name="image")
ci_app = typer.Typer(
    help="What the GitLab CI jobs run (.gitlab-ci.yml); each works the same on a laptop.",
    no_args_is_help=True,
)
app.add_typer(ci_app, name="ci")
remote_app = typer.Typer(
    help="Check and repair what the DVC remote holds (md5 of every object, not just its name).",
    no_args_is_help=True,
)
app.add_typer(remote_app, name="remote")
mlflow_app = typer.Typer(
    help="Mirror results and the registry to MLflow (MLFLOW_TRACKING_URI); git and DVC stay the truth.",
    no_args_is_help=True,
)
app.add_typer(mlflow_app, name="mlflow")

DEFAULT_BUNDLE = ProjectPaths().bundle  # models/bundle, relative to where mlcd runs

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", metavar="PATH", help="params file; outputs go under its directory.")
]


DEBUG_VARIABLE = "MLCD_DEBUG"


_traceback_flag = False  # --traceback of the current invocation (set by the app callback)


def _debugging() -> bool:
    return _traceback_flag or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _fail(message: str, exit_code: int) -> NoReturn:
    if _debugging():
        console.print_exception(show_locals=False)
    # Escaped: messages quote user input and commands such as pip install 'mlcd[serve]'.
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(exit_code)


def reports_errors(command: F) -> F:
    """Turn what a user can fix into one `error:` line and exit 2 (README "Exit codes").

    An MlcdError prints its message; a module of an optional extra that is not installed
    names the extra. Anything else is a bug and shows its traceback. `--traceback` (or
    MLCD_DEBUG=1) prints the traceback of the errors above too.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MlcdError as exc:
            _fail(str(exc), exc.exit_code)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" writing {exc.filename}" if exc.filename else ""
            _fail(
                f"no space left on the device{where}: free some (`df -h .`), then run it again; "
                "outputs are written whole or not at all, so nothing half-written was kept",
                MlcdError.exit_code,
            )
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc)
            if extra is None:
                raise
            module = (exc.name or "").partition(".")[0]
            _fail(
                f"this command needs mlcd's `{extra}` extra ({module} is not installed): "
                f"{install_hint(extra)}",
                MlcdError.exit_code,
            )
        except Exception as exc:
            if not _is_dvc_error(exc):
                raise
            advice = blank_lock_advice(Path())
            _fail(f"dvc: {str(exc).strip()}" + (f" ({advice})" if advice else ""), MlcdError.exit_code)

    return wrapper  # type: ignore[return-value]


@app.callback()
def _options(
    traceback: Annotated[
        bool,
        typer.Option(
            "--traceback",
            metavar="",
            help=f"show the full traceback of an error (or set {DEBUG_VARIABLE}=1).",
        ),
    ] = False,
) -> None:
    global _traceback_flag
    _traceback_flag = traceback
    _warn_about_interrupted_work(Path())


def _warn_about_interrupted_work(root: Path) -> None:
    """Every command first says so when an earlier one was killed halfway (README "Reliability")."""
    from mlcd.versions.interrupted import interrupted

    remove_stale_leftovers(root)
    if (pending := interrupted(root)) is not None:
        console.print(f"[yellow]warning:[/] {escape(pending.advice())}", highlight=False)
    if (advice := blank_lock_advice(root)) is not None:
        console.print(f"[yellow]warning:[/] {escape(advice)}", highlight=False)


def _is_dvc_error(exc: Exception) -> bool:
    """DVC's own errors (without importing dvc, which a serving install lacks): a message, not a bug."""
    return any(
        cls.__name__ == "DvcException" and cls.__module__ == "dvc.exceptions" for cls in type(exc).__mro__
    )


def _setup(params_file: Path) -> tuple[Params, ProjectPaths]:
    params = load_params(params_file)
    return params, ProjectPaths(params_file.parent)


@app.command()
@reports_errors
def ingest(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Write data/raw/dataset.parquet from data.source (bundled, a file, or synthetic)."""
    from mlcd.data.sources import run_ingest

    params, paths = _setup(params_file)
    run_ingest(params.data, paths)


@app.command()
@reports_errors
def validate(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Check the raw data against data.schema; list every problem, or write metrics/data.json."""
    from mlcd.data.validation import run_validate

    params, paths = _setup(params_file)
    run_validate(params, paths)


@app.command()
@reports_errors
def preprocess(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Split the validated data into seeded, stratified train and test Parquet files."""
    from mlcd.data.split import run_preprocess

    params, paths = _setup(params_file)
    run_preprocess(params.data, params.preprocess, paths)


@app.command()
@reports_errors
def train(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Fit the pipeline named by train.estimator (optionally cross-validated); save with skops."""
    from mlcd.modeling.train import run_train

    params, paths = _setup(params_file)
    run_train(params.data, params.train, paths)


@app.command()
@reports_errors
def evaluate(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Score the model on the test set: metrics/metrics.json, plot data and PNG figures."""
    from mlcd.modeling.evaluate import run_evaluate

    params, paths = _setup(params_file)
    run_evaluate(params.data, params.evaluate, paths)


@app.command()
@reports_errors
def package(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Export to ONNX, check parity with scikit-learn, write models/bundle/ with its manifest."""
    from mlcd.files import dump_json
    from mlcd.modeling.package import run_package

    params, paths = _setup(params_file)
    manifest = run_package(params, paths)
    typer.echo(dump_json({"model_hash": manifest.model_hash, "metrics": manifest.metrics}), nl=False)


@app.command("params")
@reports_errors
def show_params(params_file: ParamsOption = Path(PARAMS_FILE)) -> None:
    """Check params.yaml as `dvc repro` would, and print it with every default filled in.

    Refused: unknown keys, wrong types or ranges, .inf/.nan, a key given twice, an empty file, and a
    key that a stage in dvc.yaml lists but params.yaml lacks (DVC would stop on it).
    """
    import yaml

    from mlcd.config import parse_params, read_params_yaml
    from mlcd.dvcfiles import missing_params

    raw = read_params_yaml(params_file)
    params = parse_params(raw, origin=str(params_file))
    if missing := missing_params(params_file.parent, raw):
        raise ConfigError(f"{params_file} lacks keys dvc.yaml's stages read; add them back:", missing)
    typer.echo(yaml.safe_dump(params.as_dict(), sort_keys=False), nl=False)


DataFileArgument = Annotated[
    Path, typer.Argument(metavar="DATA_FILE", help="your table: .csv, .tsv (optionally .gz) or .parquet")
]
TargetOption = Annotated[str, typer.Option(metavar="TEXT", help="name of the column to predict")]


def _say_positive(positive: str | None) -> None:
    if positive is not None:
        console.print(
            f"positive class {positive!r}: the less frequent of the two, the one precision, "
            "recall, F1 and the curves are about; set target.positive in the schema to change it"
        )


@schema_app.command("infer")
@reports_errors
def schema_infer(
    data_file: DataFileArgument,
    target: TargetOption,
    out: Annotated[Path, typer.Option(metavar="PATH", help="where to write the schema YAML")] = Path(
        "data/schemas/custom.yaml"
    ),
    params_file: ParamsOption = Path(PARAMS_FILE),
) -> None:
    """Write a starting schema from a data file: review ranges and classes, then set data.schema.

    A CSV is read with params.yaml's data.delimiter and data.encoding, as ingest will read it.
    """
    from mlcd.data.schema import infer_schema, schema_to_yaml
    from mlcd.data.sources import read_source_file
    from mlcd.files import write_bytes

    data = _setup(params_file)[0].data if params_file.is_file() else Params().data
    schema = infer_schema(read_source_file(data_file, data.delimiter, data.encoding), target)
    write_bytes(out, schema_to_yaml(schema).encode())
    console.print(f"wrote {out}: {len(schema.features)} features, {schema.task} target {target!r}")
    _say_positive(schema.target.positive)


@data_app.command("use")
@reports_errors
def data_use(
    data_file: DataFileArgument,
    target: TargetOption,
    task: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="classification or regression; default: inferred from the target"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="replace a data file or schema of the same name")
    ] = False,
    params_file: ParamsOption = Path(PARAMS_FILE),
) -> None:
    """Use DATA_FILE: copy it to data/external/, `dvc add` it, infer its schema, set params.yaml.

    Then review the schema (bounds, classes, positive class, nullable) and run `dvc repro`.
    Nothing is written if any step would fail.
    """
    from mlcd.data.use import use_data

    if task is not None and task not in ("classification", "regression"):
        raise ConfigError(f"--task must be classification or regression, got {task!r}")
    params, paths = _setup(params_file)
    switch = use_data(data_file, target, params, paths, cast("Task | None", task), force)
    for line in (
        f"data.source: {switch.source} ({switch.rows:,} rows, tracked by DVC)",
        f"data.schema: {switch.schema} ({switch.features} features)",
        switch.inference,
        f"train.task: {switch.task}, train.estimator: {switch.estimator}",
    ):
        console.print(line)
    _say_positive(switch.positive)
    for message in switch.warnings:
        warn(message)
    console.print("next: review the schema, then `dvc repro`; commit params.yaml, the schema, the .dvc file")


RootOption = Annotated[Path, typer.Option("--repo", metavar="PATH", help="the project's git repository.")]


VerifyDataOption = Annotated[
    bool,
    typer.Option(
        "--verify-data",
        metavar="",
        help="read back and md5-check every output in the DVC remote, not only the bundle's "
        "(downloads them all).",
    ),
]


@app.command()
@reports_errors
def release(
    version: Annotated[
        str,
        typer.Argument(
            metavar="VERSION",
            help="semantic version, e.g. 1.4.0 or 1.5.0-rc.1 (tagged as model@v1.4.0, GTO's format)",
        ),
    ],
    verify_data: VerifyDataOption = False,
    repo: RootOption = Path(),
) -> None:
    """Register HEAD as a model version (a GTO tag), after checking it is committed, reproduced and pushed.

    The bundle's files are read back from the DVC remote and their md5s checked (--verify-data: every
    output's), so a version is never vouched for on a damaged remote copy.
    """
    from mlcd.tracking.mlflow_bridge import mirror, register_version
    from mlcd.versions.releases import create_release

    info = create_release(repo, version, verify_data)
    console.print(f"[green]tagged[/] {info.tag} at {info.commit[:8]} (model {str(info.model_hash)[:12]})")
    tag = str(info.tag)
    mirrored = mirror(
        lambda: (
            "MLflow: registered as version "
            + register_version(repo, tag, str(info.version), info.commit, info.model_hash)
        )
    )
    _say_mirrored(mirrored)
    console.print(f"share it with: git push origin {info.tag}")


def _say_mirrored(outcome: tuple[bool, str] | None) -> None:
    if outcome is not None:
        done, line = outcome
        console.print(f"[green]{escape(line)}[/]" if done else f"[yellow]warning:[/] {escape(line)}")


@app.command()
@reports_errors
def versions(
    all_versions: Annotated[
        bool,
        typer.Option(
            "--all",
            metavar="",
            help="also list deregistered versions and the untagged commits that changed dvc.lock.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="print JSON instead of a table.")
    ] = False,
    repo: RootOption = Path(),
) -> None:
    """List registered model versions, highest first: stages, model hash and metrics (like `gto show`)."""
    from mlcd.versions.releases import list_versions, shared_commit_warnings
    from mlcd.versions.table import print_versions

    rows = list_versions(repo, include_all=all_versions)
    for line in shared_commit_warnings(repo):
        warn(line)
    if as_json:
        from mlcd.files import dump_json

        typer.echo(dump_json([row.as_dict() for row in rows]), nl=False)
    else:
        print_versions(rows)


@app.command()
@reports_errors
def restore(
    ref: Annotated[
        str | None,
        typer.Argument(
            metavar="REF",
            help="a version (1.4.0), a stage (production: the version it holds), a tag "
            "(model@v1.4.0, model#production#3) or any commit; HEAD repairs the outputs in place.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="PATH",
            help="write only that version's model bundle into this new or empty directory; "
            "HEAD and the workspace are untouched.",
        ),
    ] = None,
    abort: Annotated[
        bool,
        typer.Option(
            "--abort", metavar="", help="undo an interrupted restore: HEAD back on its branch, outputs too."
        ),
    ] = False,
    repo: RootOption = Path(),
) -> None:
    """Bring back a model version: check out its commit and data, or copy its bundle with --out.

    Before changing anything, every needed file is fetched from the local DVC cache or the remote
    and its md5 checked. A missing or damaged file is named (damaged cache copies are removed)
    and nothing changes: not HEAD, not the workspace, not --out.
    """
    from mlcd.errors import VersionError
    from mlcd.versions.restore import abort_restore, restore_to, restore_workspace, way_back

    if abort:
        undone = abort_restore(repo)
        console.print(f"[green]restore aborted[/]: HEAD back at {undone.branch or undone.previous[:8]}")
        return
    if ref is None:
        raise VersionError("name what to restore (a version, a stage, a tag or a commit), or pass --abort")
    done = restore_workspace(repo, ref) if out is None else restore_to(repo, ref, out)
    fetched = f", {done.from_remote} file(s) fetched from the remote" if done.from_remote else ""
    for path in done.repaired:
        console.print(f"[yellow]replaced a damaged cache copy[/] of {path} with the remote's (md5 checked)")
    console.print(
        f"[green]restored[/] {done.label} (commit {done.commit[:8]}, model "
        f"{done.manifest.model_hash[:12]}) -> {done.bundle}{fetched}; md5s and manifest sha256s verified"
    )
    if done.moved_from is not None:
        console.print(f"HEAD is now detached at {done.commit[:8]}. {way_back(done.moved_from)}")


@app.command()
@reports_errors
def promote(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="a registered version, e.g. 1.4.0.")],
    stage: Annotated[
        str, typer.Argument(metavar="STAGE", help="a stage from .gto (default: staging, production).")
    ],
    image_repo: Annotated[
        str | None,
        typer.Option(
            metavar="REPO",
            envvar=IMAGE_REPO_VARIABLE,
            help="where CI pushes images, e.g. registry.example.com/group/mlcd (checked for REPO:COMMIT).",
        ),
    ] = None,
    image_check: Annotated[
        bool, typer.Option("--image-check/--no-image-check", help="check the version's image was pushed.")
    ] = True,
    demote: Annotated[
        bool, typer.Option("--demote", metavar="", help="take STAGE away from VERSION instead.")
    ] = False,
    verify_data: VerifyDataOption = False,
    repo: RootOption = Path(),
) -> None:
    """Assign STAGE to VERSION with a GTO stage tag (`model#STAGE#N`); pushing it makes CI deploy.

    Checks first that the version is registered and not deregistered, its outputs are in the DVC
    remote and its image (REPO:COMMIT) is in the registry. --demote writes GTO's unassignment
    tag instead, which deploys nothing: to change what serves, promote the version that should.
    """
    from mlcd.tracking.mlflow_bridge import mirror, set_stage_alias
    from mlcd.versions.promote import demote as run_demote
    from mlcd.versions.promote import promote as run_promote

    if demote:
        done = run_demote(repo, version, stage)
        console.print(f"[green]tagged[/] {done.tag}: {done.version} no longer holds {stage}")
    else:
        done = run_promote(repo, version, stage, image_repo, check_image=image_check, verify_data=verify_data)
        if done.already:
            console.print(f"{done.holder} already holds {stage}: nothing to do, no tag written")
            return
        image = f", image {done.image} checked" if done.image else ""
        console.print(
            f"[green]tagged[/] {done.tag}: {done.version} (commit {done.commit[:8]}) -> {stage}{image}"
        )
    # MLflow's alias follows the stage to whichever version holds it now.
    _say_mirrored(mirror(lambda: "MLflow: " + set_stage_alias(repo, stage, done.holder)))
    console.print(f"push it to act on it: git push origin '{done.tag}'")


@app.command()
@reports_errors
def serve(
    bundle: Annotated[
        Path, typer.Option(metavar="PATH", help="model bundle directory (made by `mlcd package`).")
    ] = DEFAULT_BUNDLE,
    host: Annotated[
        str, typer.Option(metavar="TEXT", help="address to listen on; 0.0.0.0 in a container.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="INTEGER", help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option(metavar="INTEGER", min=1, help="server processes.")] = 1,
    threads: Annotated[
        int, typer.Option(metavar="INTEGER", min=1, help="onnxruntime intra-op threads per process.")
    ] = 1,
    max_batch: Annotated[
        int, typer.Option(metavar="INTEGER", min=1, help="most records in one request (422 above).")
    ] = 1000,
    max_body_bytes: Annotated[
        int, typer.Option(metavar="INTEGER", min=1024, help="largest request body (413 above).")
    ] = 4 * 1024 * 1024,
    max_inflight_bytes: Annotated[
        int,
        typer.Option(
            metavar="INTEGER", min=1024, help="request bytes in flight per process (503 + Retry-After above)."
        ),
    ] = 16 * 1024 * 1024,
    request_timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.1, help="time for a request's headers and body (408 after)."),
    ] = 30.0,
    keepalive: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.1, help="an idle connection is closed after this.")
    ] = 5.0,
    write_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", min=0.1, help="a reply the client does not read is dropped after this."
        ),
    ] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(
            metavar="INTEGER",
            min=10,
            help="open connections per process (503 above; the last ones kept for /health and /ready); "
            "lowered to fit the descriptor limit.",
        ),
    ] = 10_000,
    git_commit: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help="commit for /version; default: MLCD_GIT_COMMIT, or HEAD if its dvc.lock records the bundle.",
        ),
    ] = None,
    docs: Annotated[
        bool,
        typer.Option("--docs", metavar="", help="serve Swagger UI at /docs (its scripts come from a CDN)."),
    ] = False,
) -> None:
    """Serve the bundle over HTTP: /predict, /v2 (Open Inference Protocol), /invocations (MLflow), probes.

    Every bundle file is checked against its manifest sha256, the model must load and
    reproduce the bundle's stored examples, and the port must be free, or the server does
    not start (exit 2). Set MLCD_API_TOKEN to require "Authorization: Bearer <token>" on
    /predict, /version, /v2 and /invocations; /health, /ready and /metrics stay open.
    """
    from mlcd.provenance import bundle_commit
    from mlcd.serve.app import COMMIT_ENV, ServeSettings
    from mlcd.serve.protocol import ConnectionLimits
    from mlcd.serve.server import serve as run_server

    commit = git_commit or os.environ.get(COMMIT_ENV) or bundle_commit(Path.cwd(), bundle)
    settings = ServeSettings(
        bundle=bundle,
        threads=threads,
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        max_inflight_bytes=max_inflight_bytes,
        git_commit=commit,
        docs=docs,
    )
    limits = ConnectionLimits(
        keepalive_seconds=keepalive,
        request_seconds=request_timeout,
        write_seconds=write_timeout,
        max_connections=max_connections,
    )

    def announce() -> None:
        console.print(
            f"serving {bundle} on http://{host}:{port} ({workers} worker(s), {threads} thread(s) each)"
        )

    run_server(settings, host, port, workers, limits, announce)


@app.command()
@reports_errors
def report(
    base: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help="revision to compare with; default: the MR diff base, merge-base with target, HEAD~1.",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(metavar="PATH", help="directory for report.md, PNGs, metrics.txt, report.json.")
    ] = Path("report"),
    gate: Annotated[
        bool, typer.Option("--gate", metavar="", help="exit 1 when a rule in params.yaml's gate breaks.")
    ] = False,
    post_note: Annotated[
        bool,
        typer.Option(
            "--post/--no-post", metavar="", help="post to the merge request when GITLAB_TOKEN is set."
        ),
    ] = True,
    repo: RootOption = Path(),
) -> None:
    """Compare metrics, params, data, model size/latency and plots with a base revision.

    Exit codes: 0 report written (gate passed or not asked for); 1 the gate failed; 2 bad input. A note
    that cannot be posted never changes the exit code: the reason is printed and the report stays in --out.
    """
    from mlcd.report.run import run_report

    result = run_report(repo, base, out, gate, post_note)
    typer.echo(result.markdown)
    if result.gate_failed:
        failed = ", ".join(rule.name for rule in result.rules or [] if rule.passed is False)
        console.print(f"[bold red]gate failed:[/] {failed}")
        raise typer.Exit(1)


@image_app.command("build")
@reports_errors
def image_build(
    tag: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="image name; default `localhost/mlcd-model:<model hash>`."),
    ] = None,
    local_base: Annotated[
        bool,
        typer.Option(
            metavar="", help="build Debian base images locally with mmdebstrap (no registry needed)."
        ),
    ] = False,
    base_image: Annotated[str | None, typer.Option(metavar="TEXT", help="BASE_IMAGE build argument.")] = None,
    runtime_image: Annotated[
        str | None, typer.Option(metavar="TEXT", help="RUNTIME_IMAGE build argument.")
    ] = None,
    repo: RootOption = Path(),
) -> None:
    """Build the Dockerfile around models/bundle with podman (needs podman, buildah, runc, mmdebstrap)."""
    from mlcd.container.image import build
    from mlcd.files import human_size

    built = build(repo, tag, local_base, base_image, runtime_image)
    console.print(f"[green]built[/] {built.name} ({human_size(built.size_bytes)}, user {built.user})")
    typer.echo(built.name)


@image_app.command("smoke")
@reports_errors
def image_smoke(
    image: Annotated[
        str, typer.Argument(metavar="IMAGE", help="image to run, e.g. `localhost/mlcd-model:<hash>`")
    ],
    bundle: Annotated[
        Path, typer.Option(metavar="PATH", help="the bundle the image should answer like.")
    ] = DEFAULT_BUNDLE,
) -> None:
    """Run the image on a loopback port, wait for /ready, check its answers and non-root user, remove it."""
    from mlcd.container.smoke import running, smoke_test

    with running(image, "mlcd-smoke") as container:
        checked = smoke_test(container, bundle)
    console.print(f"[green]smoke test passed[/]: {checked} records, ready in {container.ready_seconds:.2f} s")


EnvironmentOption = Annotated[
    str,
    typer.Option("--environment", "-e", metavar="TEXT", help="environment name: staging, production, ..."),
]
BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        metavar="TEXT",
        envvar="DEPLOY_BACKEND",
        help="podman (one host, nginx in front) or kubernetes (kubectl).",
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        metavar="INTEGER",
        envvar="MLCD_DEPLOY_PORT",
        help="podman: public port (nginx); the colours use port+1, port+2 "
        "[the environment's recorded port, else 8080].",
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH",
        envvar="MLCD_DEPLOY_STATE_DIR",
        help="podman: where state.json and nginx.conf live [~/.local/state/mlcd/deploy/ENV]",
    ),
]
NamespaceOption = Annotated[
    str | None, typer.Option(metavar="TEXT", help="kubernetes: namespace [mlcd-ENV].")
]
ContextOption = Annotated[
    str | None, typer.Option(metavar="TEXT", envvar="KUBE_CONTEXT", help="kubernetes: kubectl context.")
]
TimeoutOption = Annotated[
    float, typer.Option(metavar="FLOAT", help="seconds to wait for the new colour's /ready.")
]


@app.command()
@reports_errors
def deploy(
    image: Annotated[
        str,
        typer.Argument(metavar="IMAGE", help="image to deploy, e.g. registry.example.com/group/mlcd:COMMIT"),
    ],
    environment: EnvironmentOption = "staging",
    backend: BackendOption = "podman",
    bundle: Annotated[
        Path,
        typer.Option(
            metavar="PATH", help="the bundle the image was built from; its examples are the smoke test."
        ),
    ] = DEFAULT_BUNDLE,
    port: PortOption = None,
    state_dir: StateDirOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Blue/green deploy: start IMAGE in the idle colour, wait for /ready, smoke-test it, switch traffic.

    The smoke test posts the bundle's example records and needs the bundle's own answers back (and the
    bundle's model hash from /ready). If anything fails before the switch, traffic stays where it was and
    the idle colour is put back to the previous release, so `mlcd rollback` still works.
    """
    from mlcd.deploy.backends import make_backend
    from mlcd.deploy.bluegreen import Expected
    from mlcd.deploy.bluegreen import deploy as run_deploy

    target = make_backend(
        backend, environment, port=port, state_dir=state_dir, namespace=namespace, context=context
    )
    state = run_deploy(target, image, Expected.from_bundle(bundle), timeout)
    was = f", previous {state.previous.colour} kept for rollback" if state.previous else ""
    console.print(
        f"[green]{environment}[/]: {state.live.colour} is live with {image} "
        f"(model {state.live.model_hash[:12]}){was}"
    )


@app.command()
@reports_errors
def rollback(
    environment: EnvironmentOption = "staging",
    backend: BackendOption = "podman",
    port: PortOption = None,
    state_dir: StateDirOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Switch traffic back to the previous colour, which every deploy keeps running."""
    from mlcd.deploy.backends import make_backend
    from mlcd.deploy.bluegreen import rollback as run_rollback

    target = make_backend(
        backend, environment, port=port, state_dir=state_dir, namespace=namespace, context=context
    )
    state = run_rollback(target, timeout)
    console.print(
        f"[green]{environment}[/]: rolled back to {state.live.colour} with {state.live.image} "
        f"(model {state.live.model_hash[:12]})"
    )


@app.command()
@reports_errors
def undeploy(
    environment: EnvironmentOption = "staging",
    backend: BackendOption = "podman",
    port: PortOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Take an environment down (podman backend): remove both colours, stop its nginx, forget its state."""
    from mlcd.deploy.backends import make_backend
    from mlcd.deploy.backends import undeploy as run_undeploy

    run_undeploy(make_backend(backend, environment, port=port, state_dir=state_dir), environment)
    console.print(f"[green]{environment}[/]: both colours removed, nginx stopped, deploy state forgotten")


@ci_app.command("remote")
@reports_errors
def ci_remote(repo: RootOption = Path()) -> None:
    """Make DVC_REMOTE_URL (plus DVC_REMOTE_ENDPOINT_URL, DVC_REMOTE_REGION) the default DVC remote.

    Written to .dvc/config.local, which git ignores; credentials stay in the environment.
    """
    import os

    from mlcd.ci.remote import URL_VARIABLE, configure_remote

    remote = configure_remote(repo, os.environ)
    console.print(f"DVC remote: {remote}" if remote else f"{URL_VARIABLE} unset: using .dvc/config's remote")


@ci_app.command("reproduce")
@reports_errors
def ci_reproduce(
    push: Annotated[
        bool,
        typer.Option(
            "--push/--no-push",
            metavar="",
            envvar="MLCD_PUSH",
            help="push outputs and run-cache (the default branch does).",
        ),
    ] = False,
    dotenv: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="write MODEL_HASH=... here, for a GitLab dotenv report."),
    ] = None,
    metrics_report: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH", help="write the test metrics here as `name value` lines, GitLab's metrics report."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            metavar="",
            help="re-run every stage, after fetching the committed outputs, to prove the lock here.",
        ),
    ] = False,
    repo: RootOption = Path(),
) -> None:
    """`dvc repro` with what DVC_REMOTE_URL holds, and fail if the committed dvc.lock was wrong.

    Wrong means stale (a stage's code, data or params changed without `dvc repro`, named by stage) or
    different (a stage gave other results from the same inputs). Outputs whose bytes differ are compared
    by content first: float noise from another CPU is "equivalent" and passes, with the largest
    difference named. Without DVC_REMOTE_URL the pipeline is reproduced from scratch and nothing is
    pulled or pushed. README "Reproducibility" says what is byte-identical where.
    """
    from mlcd.ci.reproduce import reproduce
    from mlcd.reproducibility.equivalence import Verdict

    done = reproduce(repo, push, dotenv, force, metrics_report)
    for comparison in done.comparisons:
        console.print(comparison.line(), highlight=False)
    timings = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in done.seconds.items())
    meaning = {
        Verdict.IDENTICAL: "identical: every compared output has the committed bytes",
        Verdict.EQUIVALENT: "equivalent: some bytes differ by float noise only (another CPU or BLAS kernel)",
    }[done.verdict]
    unverified = sum(c.verdict is Verdict.UNVERIFIED for c in done.comparisons)
    console.print(
        f"[green]dvc.lock verified[/], {meaning}; model {done.model_hash[:12]}; {timings}"
        + (f"; {unverified} output(s) not compared, no committed copy here" if unverified else "")
        + ("; outputs and run-cache pushed" if done.pushed else ""),
        highlight=False,
    )


@ci_app.command("verify-release")
@reports_errors
def ci_verify_release(
    tag: Annotated[
        str,
        typer.Argument(
            metavar="TAG",
            envvar=["CI_COMMIT_TAG", "TAG_NAME"],  # GitLab CI, Jenkins
            help="registration tag, `<artifact>@v<semver>` [the CI's tag].",
        ),
    ],
    notes: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH", help="write the GitLab Release description here (model hash, bundle, metrics)."
        ),
    ] = None,
    verify_data: VerifyDataOption = False,
    repo: RootOption = Path(),
) -> None:
    """Check a registration tag names the model artifact and every output it needs is in the DVC remote
    (the bundle's files read back and md5-checked; --verify-data: every output's)."""
    from mlcd.ci.release import release_notes, verify_release

    registration, count = verify_release(repo, tag, verify_data)
    console.print(
        f"[green]{tag}[/] ({registration.commit[:8]}): all {count} objects are in the DVC remote; "
        f"{'every output' if verify_data else 'the bundle'}'s read back and md5-checked"
    )
    if notes is not None:
        notes.write_text(release_notes(repo, registration), encoding="utf-8")
        console.print(f"release notes for GitLab's Release written to {notes}")


@ci_app.command("deploy-target")
@reports_errors
def ci_deploy_target(
    dotenv: Annotated[
        Path, typer.Option(metavar="PATH", help="write MLCD_DEPLOY_IMAGE and MLCD_DEPLOY_BUNDLE here.")
    ],
    environment: Annotated[
        str,
        typer.Option(metavar="TEXT", envvar="CI_ENVIRONMENT_NAME", help="the environment being deployed."),
    ],
    repo: RootOption = Path(),
) -> None:
    """Pick what a deploy job deploys: this pipeline's image and bundle, or on a stage tag
    (`model#<stage>#<n>`) the promoted version's pushed image and its bundle from the DVC remote."""
    import os

    from mlcd.ci.deploy_target import deploy_target

    target = deploy_target(repo, environment, os.environ)
    dotenv.write_text(target.dotenv(), encoding="utf-8")
    console.print(f"{environment} <- {target.what}: image {target.image}, bundle {target.bundle}")


@remote_app.command("verify")
@reports_errors
def remote_verify(
    rev: Annotated[str, typer.Argument(metavar="REV", help="the revision whose outputs to check.")] = "HEAD",
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", metavar="", help="re-upload good local-cache copies of missing or damaged objects."
        ),
    ] = False,
    repo: RootOption = Path(),
) -> None:
    """Read back every object of REV's outputs from the default DVC remote and check its md5.

    Exit 2 when an object is missing or damaged (after --repair: one that no good local copy could
    replace). `dvc push` cannot do this: it skips an object whose name the remote already has.
    """
    from mlcd.errors import VersionError
    from mlcd.git import resolve_commit
    from mlcd.versions.remote_check import check_remote, repair_remote

    commit = resolve_commit(repo, rev)
    if commit is None:
        raise VersionError(f"{rev!r} is not a commit of this repository")
    report = check_remote(repo, commit, read_back=None)
    if repair:
        report = repair_remote(repo, report)
    for item in report.objects:
        if item.problem:
            console.print(escape(item.line()), highlight=False)
    if report.bad:
        raise VersionError(
            f"{len(report.bad)} of {len(report.objects)} objects of {rev} ({commit[:8]}) are missing or "
            f"damaged in {report.remote}: "
            + (
                "no good local copy of them here; `dvc push` them from a clone that has them"
                if repair
                else "`mlcd remote verify --repair` re-uploads good local copies"
            )
        )
    repaired = sum(o.repaired for o in report.objects)
    console.print(
        f"[green]{report.remote}[/]: all {len(report.objects)} objects of {rev} ({commit[:8]}) have the "
        "right md5" + (f" ({repaired} re-uploaded)" if repaired else "")
    )


ExperimentOption = Annotated[
    str | None,
    typer.Option(metavar="NAME", envvar="MLFLOW_EXPERIMENT_NAME", help="MLflow experiment [mlcd]."),
]
BestEffortOption = Annotated[
    bool,
    typer.Option(
        "--best-effort",
        metavar="",
        help="for CI: without MLFLOW_TRACKING_URI do nothing, and when MLflow fails warn instead of failing.",
    ),
]


@mlflow_app.command("log")
@reports_errors
def mlflow_log(
    rev: Annotated[
        str | None,
        typer.Option(
            metavar="REV", help="a commit, tag or `dvc exp` name; default: the workspace's results."
        ),
    ] = None,
    experiment: ExperimentOption = None,
    best_effort: BestEffortOption = False,
    repo: RootOption = Path(),
) -> None:
    """Log one run of the pipeline's results to MLflow: params, metrics, CV scores, figures, report,
    the ONNX bundle as a model with the bundle's schema as signature, git and dvc.lock hashes as tags.

    Idempotent: the same commit and dvc.lock give the same run, found by its `mlcd.key` tag.
    """
    import time

    from mlcd.tracking.mlflow_bridge import URI_VARIABLE, log_results, mirror

    def log() -> str:
        started = time.monotonic()
        run = log_results(repo, rev, experiment)
        verb = "logged" if run.created else "already logged, unchanged:"
        seconds = time.monotonic() - started
        return f"MLflow: {verb} run {run.run_id} (experiment {run.experiment_id}, {seconds:.1f} s)"

    if best_effort:
        outcome = mirror(log)
        _say_mirrored(outcome or (True, f"{URI_VARIABLE} is not set: nothing logged"))
    else:
        console.print(f"[green]{escape(log())}[/]")


@mlflow_app.command("sync")
@reports_errors
def mlflow_sync(best_effort: BestEffortOption = False, repo: RootOption = Path()) -> None:
    """Mirror every registered version (GTO tags) as an MLflow model version and each stage as an alias."""
    from mlcd.tracking.mlflow_bridge import URI_VARIABLE, mirror, sync

    def run() -> str:
        return "MLflow synced: " + "; ".join(sync(repo))

    if best_effort:
        _say_mirrored(mirror(run) or (True, f"{URI_VARIABLE} is not set: nothing synced"))
    else:
        console.print(f"[green]{escape(run())}[/]")


def main() -> None:
    # Before any command imports numpy: OpenBLAS reads its kernel choice once, at load.
    pin_blas_kernel()
    app(prog_name="mlcd")
