"""What a CI deploy job deploys: this pipeline's image and bundle, or a promoted version's.

Branch pipelines deploy what they just built (the `reproduce` job's bundle, the `build` job's
image). A GTO stage tag (`<artifact>#<stage>#<n>`, from `mlcd promote` or `gto assign`) deploys
the version it assigns: the image that version's pipeline pushed (`<image repo>:<commit>`, never
rebuilt) and its bundle restored from the DVC remote, md5-checked, for the smoke test. The stage
and the CI environment must have the same name: that is the whole stage-to-environment mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlcd.ci_variables import COMMIT, IMAGE_REPO, ci_environment
from mlcd.config import ProjectPaths
from mlcd.dvcfiles import model_artifact
from mlcd.errors import PipelineError
from mlcd.git import short
from mlcd.versions import registry
from mlcd.versions.promote import image_for
from mlcd.versions.restore import restore_to

RESTORED_BUNDLE = Path(".mlcd") / "deploy-bundle"  # a stage tag's bundle, inside the job's checkout


@dataclass(frozen=True)
class DeployTarget:
    image: str
    bundle: Path
    what: str  # for the log: which version, or "this pipeline's build"

    def dotenv(self) -> str:
        return f"MLCD_DEPLOY_IMAGE={self.image}\nMLCD_DEPLOY_BUNDLE={self.bundle}\n"


def deploy_target(root: Path, environment: str, env: Mapping[str, str]) -> DeployTarget:
    ci = ci_environment(env)
    tag, image_repo = ci.tag, ci.image_repo
    if not image_repo:
        raise PipelineError(f"{' or '.join(IMAGE_REPO)} must name the image repository")
    if not tag:
        commit = ci.commit
        if not commit:
            raise PipelineError(f"{' or '.join(COMMIT)} must name the commit being deployed")
        bundle = ProjectPaths(root).bundle
        return DeployTarget(
            image_for(image_repo, commit), bundle, f"this pipeline's build of {short(commit)}"
        )
    art = model_artifact(root)
    assignments = [
        e for e in registry.tag_events(root, tag) if e.action == "assignment" and e.artifact == art.name
    ]
    if not assignments or assignments[0].version is None:
        raise PipelineError(
            f"tag {tag!r} does not assign a stage to a version of {art.name!r} "
            f"(expected {art.name}#<stage>#<n>, as `mlcd promote` writes); nothing deployed"
        )
    event = assignments[0]
    if event.stage != environment:
        raise PipelineError(
            f"tag {tag} assigns stage {event.stage!r} but this job deploys environment {environment!r}: "
            "a stage deploys only to the environment of the same name"
        )
    version = registry.find_version(root, art.name, event.version or "")
    if version is None or not version.registered:
        raise PipelineError(f"tag {tag} assigns {event.version}, which is not a registered version")
    out = root / RESTORED_BUNDLE
    restore_to(root, version.tag, out)
    return DeployTarget(
        image_for(image_repo, version.commit),
        out,
        f"{version.tag} (commit {short(version.commit)}, tag {tag})",
    )
