"""Deploys: `mlcd deploy` (blue/green, canary, shadow; status; render), `mlcd rollback`, `mlcd undeploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mlcd.cli.base import BundleOption, RootOption, bundle_in, reports_errors
from mlcd.console import console
from mlcd.deploy.rollout_spec import ROLLOUT_FILE

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
RolloutOption = Annotated[
    Path | None, typer.Option(metavar="PATH", help=f"the rollout spec [{ROLLOUT_FILE} in --repo].")
]
PrometheusOption = Annotated[
    str | None,
    typer.Option(
        metavar="URL", envvar="MLCD_PROMETHEUS_URL", help="Prometheus for the checks [rollout spec]."
    ),
]
TimeoutOption = Annotated[
    float, typer.Option(metavar="FLOAT", help="seconds to wait for the new colour's /ready.")
]


def rollout_in(root: Path, rollout: Path | None) -> Path:
    """An explicit --rollout as given, else the project's own spec."""
    return root / ROLLOUT_FILE if rollout is None else rollout


class DeployGroup(TyperGroup):
    """`mlcd deploy IMAGE` deploys; `mlcd deploy status|render` are commands of the same group."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [DEPLOY_COMMAND, *args]
        return super().parse_args(ctx, args)


DEPLOY_COMMAND = "image"
deploy_app = typer.Typer(
    cls=DeployGroup,
    no_args_is_help=True,
    help="Deploy an image (`mlcd deploy IMAGE`), show the rollout (`status`), "
    "write it for Kubernetes (`render`).",
)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")
    for command in (rollback, undeploy):
        app.command()(reports_errors(command))


@deploy_app.command(DEPLOY_COMMAND)
@reports_errors
def deploy(
    image: Annotated[
        str,
        typer.Argument(metavar="IMAGE", help="image to deploy, e.g. registry.example.com/group/mlcd:COMMIT"),
    ],
    environment: EnvironmentOption = "staging",
    backend: BackendOption = "podman",
    strategy: Annotated[
        str,
        typer.Option(
            metavar="TEXT",
            envvar="MLCD_DEPLOY_STRATEGY",
            help="bluegreen (switch at once after a smoke test), canary (a growing share judged on "
            "Prometheus) or shadow (a mirror of live traffic; promotes only with --promote-if-agree).",
        ),
    ] = "bluegreen",
    rollout: RolloutOption = None,
    prometheus: PrometheusOption = None,
    steps: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="canary: the shares in percent, e.g. 10,50 [rollout spec]."),
    ] = None,
    interval: Annotated[
        float | None, typer.Option(metavar="FLOAT", help="canary: seconds per check [rollout spec].")
    ] = None,
    promote_if_agree: Annotated[
        float | None,
        typer.Option(metavar="FLOAT", help="shadow: promote when this share of answers agrees, e.g. 0.99."),
    ] = None,
    bundle: BundleOption = None,
    port: PortOption = None,
    state_dir: StateDirOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    timeout: TimeoutOption = 60.0,
    repo: RootOption = Path(),
) -> None:
    """Deploy IMAGE to the idle colour, check it, and move traffic to it by the --strategy.

    Every strategy first waits for /ready and smoke-tests the bundle's example records (the bundle the
    image was built from): its answers and model hash must match. If anything fails before traffic
    moves, the idle colour is put back to the previous release, so `mlcd rollback` still works.
    A canary or a shadow that fails its checks rolls back by itself and exits 2.
    """
    from mlcd.deploy.backends import make_backend
    from mlcd.deploy.progressive import run_deploy

    target = make_backend(
        backend, environment, port=port, state_dir=state_dir, namespace=namespace, context=context
    )
    overrides = {
        "prometheus": prometheus,
        "canary.steps": [float(s) for s in steps.split(",")] if steps else None,
        "canary.interval_seconds": interval,
    }
    line = run_deploy(
        target, strategy, image, bundle_in(repo, bundle), rollout_in(repo, rollout),
        overrides, promote_if_agree, timeout,
    )  # fmt: skip
    console.print(f"[green]{environment}[/]: {line}")


@deploy_app.command("status")
@reports_errors
def status(
    environment: EnvironmentOption = "staging", port: PortOption = None, state_dir: StateDirOption = None
) -> None:
    """What is live and previous in ENVIRONMENT (podman), and the last rollout's steps and checks."""
    from mlcd.deploy.backends import make_backend
    from mlcd.deploy.progressive import describe_status

    for line in describe_status(make_backend("podman", environment, port=port, state_dir=state_dir)):
        console.print(line, highlight=False, markup=False)


@deploy_app.command("render")
@reports_errors
def render(
    strategy: Annotated[str, typer.Option(metavar="TEXT", help="canary (the only one rendered).")] = "canary",
    output: Annotated[
        Path, typer.Option(metavar="PATH", help="where flagger.yaml and argo-rollouts.yaml go.")
    ] = Path("deploy/kubernetes/progressive"),
    gateway: Annotated[
        str, typer.Option(metavar="TEXT", help="Flagger: the Gateway API Gateway, NAME or NAME.NAMESPACE.")
    ] = "mlcd-gateway",
    rollout: RolloutOption = None,
    prometheus: PrometheusOption = None,
    bundle: BundleOption = None,
    repo: RootOption = Path(),
) -> None:
    """Write the rollout spec as a Flagger Canary and an Argo Rollout, with the same checks' PromQL."""
    from mlcd.deploy.progressive import render_kubernetes

    written = render_kubernetes(
        repo, strategy, rollout_in(repo, rollout), prometheus, bundle_in(repo, bundle), repo / output, gateway
    )
    console.print(f"wrote {', '.join(str(p) for p in written)}")


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
