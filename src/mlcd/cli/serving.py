"""The model API: `mlcd serve`, and its image (`mlcd image build`, `mlcd image smoke`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlcd.cli.base import BundleOption, RootOption, bundle_in, reports_errors
from mlcd.console import console

image_app = typer.Typer(help="Build and smoke-test the model API image with podman.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(reports_errors(serve))
    app.command()(reports_errors(predict))


def predict(
    source: Annotated[
        Path, typer.Argument(metavar="INPUT", help="a CSV or Parquet file, or a folder of them.")
    ],
    target: Annotated[
        Path, typer.Argument(metavar="OUTPUT", help="where the predictions go: a .csv or .parquet file.")
    ],
    bundle: BundleOption = None,
    batch_rows: Annotated[
        int, typer.Option(metavar="INTEGER", min=1, help="rows read, checked and scored at a time.")
    ] = 10_000,
    repo: RootOption = Path(),
) -> None:
    """Score a table of any size with the bundle's model, batch by batch (batch scoring).

    Every row is validated and answered as /predict would; a row /predict would refuse stops
    the run naming it, and OUTPUT is written whole or not at all. Input columns that are not
    features (IDs, keys) are copied beside predicted_label and probability_<class> (or
    predicted_value for a regression).
    """
    from mlcd.serve.batch import predict_table

    scored = predict_table(source, target, bundle_in(repo, bundle), batch_rows)
    kept = f"; kept {', '.join(scored.keys)}" if scored.keys else ""
    console.print(f"[green]scored[/] {scored.rows:,} rows -> {target} ({', '.join(scored.columns)}{kept})")


def serve(
    bundle: BundleOption = None,
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
    log_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="log every answer (request id, inputs, outputs) to Parquet files here, 0600, "
            "rotated by size and hour; records that would wait on the disk are dropped and counted.",
        ),
    ] = None,
    log_sample: Annotated[
        float, typer.Option(metavar="SHARE", min=0.0, max=1.0, help="share of requests logged (0 to 1).")
    ] = 1.0,
    log_remote: Annotated[
        str | None,
        typer.Option(
            metavar="S3_URL",
            help="ship each closed log file to s3://bucket/prefix (boto3's credentials and "
            "AWS_ENDPOINT_URL from the environment), where CI reads them.",
        ),
    ] = None,
    drift: Annotated[
        bool,
        typer.Option(
            "--drift/--no-drift",
            help="measure each feature's drift against the bundle's reference (needs scipy; "
            "params.yaml's monitor section sets the window and tests).",
        ),
    ] = True,
    repo: RootOption = Path(),
) -> None:
    """Serve the bundle over HTTP: /predict, /v2 (Open Inference Protocol), /invocations (MLflow), probes.

    Every bundle file is checked against its manifest sha256, the model must load and
    reproduce the bundle's stored examples, and the port must be free, or the server does
    not start (exit 2). Set MLCD_API_TOKEN to require "Authorization: Bearer <token>" on
    /predict, /version, /v2 and /invocations; /health, /ready and /metrics stay open.
    """
    from mlcd.provenance import serving_commit
    from mlcd.serve.app import ServeSettings
    from mlcd.serve.protocol import ConnectionLimits
    from mlcd.serve.rotating_log import log_settings
    from mlcd.serve.server import serve as run_server

    served = bundle_in(repo, bundle)
    settings = ServeSettings(
        bundle=served,
        threads=threads,
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        max_inflight_bytes=max_inflight_bytes,
        git_commit=serving_commit(repo, served, git_commit),
        docs=docs,
        log=log_settings(log_dir, log_sample, log_remote),
        drift=drift,
    )
    limits = ConnectionLimits(
        keepalive_seconds=keepalive,
        request_seconds=request_timeout,
        write_seconds=write_timeout,
        max_connections=max_connections,
    )

    def announce() -> None:
        console.print(
            f"serving {served} on http://{host}:{port} ({workers} worker(s), {threads} thread(s) each)"
        )

    run_server(settings, host, port, workers, limits, announce)


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
    bundle: BundleOption = None,
    repo: RootOption = Path(),
) -> None:
    """Run the image on a loopback port, wait for /ready, check its answers and non-root user, remove it."""
    from mlcd.container.smoke import running, smoke_test

    with running(image, "mlcd-smoke") as container:
        checked = smoke_test(container, bundle_in(repo, bundle))
    console.print(f"[green]smoke test passed[/]: {checked} records, ready in {container.ready_seconds:.2f} s")
