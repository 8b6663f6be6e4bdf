"""What the CI jobs run (`mlcd ci ...`), each the same on a laptop, and `mlcd remote verify`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mlcd.cli.base import RootOption, reports_errors
from mlcd.cli.registry import VerifyDataOption
from mlcd.console import console

ci_app = typer.Typer(
    help="What the GitLab CI jobs run (.gitlab-ci.yml); each works the same on a laptop.",
    no_args_is_help=True,
)
remote_app = typer.Typer(
    help="Check and repair what the DVC remote holds (md5 of every object, not just its name).",
    no_args_is_help=True,
)


@ci_app.command("remote")
@reports_errors
def ci_remote(repo: RootOption = Path()) -> None:
    """Make DVC_REMOTE_URL (plus DVC_REMOTE_ENDPOINT_URL, DVC_REMOTE_REGION) the default DVC remote.

    Written to .dvc/config.local, which git ignores; credentials stay in the environment.
    """
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
