"""Blue/green deploys: `mlcd deploy`, `mlcd rollback`, `mlcd undeploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlcd.cli.base import BundleOption, RootOption, bundle_in, reports_errors
from mlcd.console import console

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


def register(app: typer.Typer) -> None:
    for command in (deploy, rollback, undeploy):
        app.command()(reports_errors(command))


def deploy(
    image: Annotated[
        str,
        typer.Argument(metavar="IMAGE", help="image to deploy, e.g. registry.example.com/group/mlcd:COMMIT"),
    ],
    environment: EnvironmentOption = "staging",
    backend: BackendOption = "podman",
    bundle: BundleOption = None,
    port: PortOption = None,
    state_dir: StateDirOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    timeout: TimeoutOption = 60.0,
    repo: RootOption = Path(),
) -> None:
    """Blue/green deploy: start IMAGE in the idle colour, wait for /ready, smoke-test it, switch traffic.

    The smoke test posts the bundle's example records (the bundle the image was built from) and needs the
    bundle's own answers back (and its model hash from /ready). If anything fails before the switch,
    traffic stays where it was and the idle colour is put back to the previous release, so
    `mlcd rollback` still works.
    """
    from mlcd.deploy.backends import make_backend
    from mlcd.deploy.bluegreen import Expected
    from mlcd.deploy.bluegreen import deploy as run_deploy

    target = make_backend(
        backend, environment, port=port, state_dir=state_dir, namespace=namespace, context=context
    )
    state = run_deploy(target, image, Expected.from_bundle(bundle_in(repo, bundle)), timeout)
    was = f", previous {state.previous.colour} kept for rollback" if state.previous else ""
    console.print(
        f"[green]{environment}[/]: {state.live.colour} is live with {image} "
        f"(model {state.live.model_hash[:12]}){was}"
    )


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
