"""The model registry: release, versions, restore, promote (GTO's tags; MLflow mirrors them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlcd.ci_variables import IMAGE_REPO_VARIABLE
from mlcd.cli.base import RootOption, reports_errors, say_mirrored
from mlcd.console import console, warn

VerifyDataOption = Annotated[
    bool,
    typer.Option(
        "--verify-data",
        metavar="",
        help="read back and md5-check every output in the DVC remote, not only the bundle's "
        "(downloads them all).",
    ),
]


def register(app: typer.Typer) -> None:
    for command in (release, versions, restore, promote):
        app.command()(reports_errors(command))


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
    from mlcd.tracking.mlflow_bridge import mirror_registration
    from mlcd.versions.releases import create_release

    info = create_release(repo, version, verify_data)
    console.print(f"[green]tagged[/] {info.tag} at {info.commit[:8]} (model {str(info.model_hash)[:12]})")
    say_mirrored(mirror_registration(repo, str(info.tag), str(info.version), info.commit, info.model_hash))
    console.print(f"share it with: git push origin {info.tag}")


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
    from mlcd.tracking.mlflow_bridge import mirror_stage
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
    say_mirrored(mirror_stage(repo, stage, done.holder))
    console.print(f"push it to act on it: git push origin '{done.tag}'")
