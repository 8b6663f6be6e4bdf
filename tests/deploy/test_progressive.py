"""Canary and shadow rollouts for real: podman colours behind Debian's nginx, a real Prometheus
scraping each colour (the deploy's file_sd targets) every second, clients sending without pause.

Good and faulty candidates (conftest.py): a good one takes all traffic step by step with no failed
request; one answering 5xx on 20 %, one 50 ms late and one answering one class are rolled back by
themselves; too little traffic waits (inconclusive), then passes once traffic comes. A shadow
changes nothing clients see, even when the candidate is broken, and promotes only when asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from mlcd.deploy.podman_backend import SCRAPE_TARGETS, PodmanBackend

from ..helpers import PROJECT_ROOT, Repo, free_port_run, start_service
from ..system import apt_install
from .conftest import ENVIRONMENT, Load, Release

pytestmark = [
    pytest.mark.image,
    pytest.mark.needs_podman,
    pytest.mark.needs_promtool,
]
# Short steps for a test: a check every 3 s, 2 failures roll back, 20 requests make a verdict.
ROLLOUT = {
    "canary": {"steps": [10, 50], "interval_seconds": 3, "failure_limit": 2, "min_requests": 20,
               "inconclusive_deadline_seconds": 60},
    "checks": {"latency_p99_floor_seconds": 0.02},
    "shadow": {"duration_seconds": 5, "requests": 100000, "timeout_seconds": 0.5, "compared_requests": 100},
}  # fmt: skip


@dataclass
class Site:
    """One environment: its state directory, public port, Prometheus and mlcd's options for it;
    and a production environment the same Prometheus scrapes, for the CI deploy job."""

    state: Path
    port: int
    prometheus: str
    rollout: Path
    production: PodmanBackend

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self) -> list[str]:
        return ["--environment", ENVIRONMENT, "--port", str(self.port), "--state-dir", str(self.state),
                "--rollout", str(self.rollout), "--prometheus", self.prometheus]  # fmt: skip


@pytest.fixture(scope="module")
def site(
    releases: dict[str, Release], reproduced_repo: Repo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One environment for the module, v1 live on blue; its Prometheus started once."""
    apt_install("prometheus", programs=("prometheus", "promtool"))
    tmp_path = tmp_path_factory.mktemp("progressive")
    port = free_port_run()
    state = tmp_path / "state"
    backend = PodmanBackend(ENVIRONMENT, state, port)  # writes the scrape targets Prometheus reads
    production = PodmanBackend("production", tmp_path / "production", free_port_run())
    # The committed rollout Prometheus, scraping every second and reading this test's targets
    config = yaml.safe_load((PROJECT_ROOT / "monitoring" / "prometheus-rollouts.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    (job,) = config["scrape_configs"]
    job["file_sd_configs"][0]["files"] = [
        str(state / SCRAPE_TARGETS),
        str(production.state_dir / SCRAPE_TARGETS),
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "rollout.yaml").write_text(yaml.safe_dump(ROLLOUT))
    prometheus_port = free_port_run(1)
    url = f"http://127.0.0.1:{prometheus_port}"
    process = start_service(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}",
         "--log.level=warn"],
        f"{url}/-/ready", tmp_path / "prometheus.log", any_answer=False,
    )  # fmt: skip
    try:
        site = Site(state, port, url, tmp_path / "rollout.yaml", production)
        _live(reproduced_repo, site, releases["v1"])
        yield site
    finally:
        process.terminate()
        process.wait(10)
        backend.teardown()
        production.teardown()


@pytest.fixture(autouse=True)
def v1_live(site: Site, releases: dict[str, Release], reproduced_repo: Repo) -> None:
    """Every test starts from v1 live on blue: a promoting test's candidate is rolled back."""
    if json.loads((site.state / "state.json").read_text())["live"]["image"] != releases["v1"].image:
        reproduced_repo.mlcd("rollback", "--environment", ENVIRONMENT, "--state-dir", str(site.state))
    (site.state / "rollout.json").unlink(missing_ok=True)


def _records(release: Release) -> list[dict]:
    """Live traffic: four of the example records (two of each class) in every request."""
    return json.loads((release.bundle / "examples.json").read_text())["records"][:4]


def _live(repo: Repo, site: Site, release: Release) -> None:
    repo.mlcd("deploy", release.image, "--bundle", str(release.bundle), *site.options())


def _rollout(site: Site) -> dict:
    return json.loads((site.state / "rollout.json").read_text())


def _query(site: Site, expr: str) -> list[dict]:
    return httpx.get(f"{site.prometheus}/api/v1/query", params={"query": expr}).json()["data"]["result"]


def test_a_good_candidate_passes_every_step_and_takes_all_traffic(releases, reproduced_repo, site):
    v1, v2 = releases["v1"], releases["v2"]
    with Load(site.public, _records(v1)) as load:
        started = time.monotonic()
        done = reproduced_repo.mlcd(
            "deploy", v2.image, "--bundle", str(v2.bundle), "--strategy", "canary", *site.options()
        )
        took = time.monotonic() - started
    print(f"\ngood candidate: promoted in {took:.1f} s; {load.total} requests, {len(load.failed)} failed")
    assert "green is live" in done.stderr and "after every canary step passed" in done.stderr, done.stderr
    assert load.failed == []
    assert {"blue", "green"} <= set(load.colours[: len(load.colours) // 2])  # the split, on live traffic
    assert load.answered[-1] == v2.model_hash
    record = _rollout(site)
    assert record["phase"] == "promoted" and [s["weight"] for s in record["steps"]] == [10, 50]
    assert all(step["analyses"][-1]["verdict"] == "pass" for step in record["steps"])
    # The rollout's gauges reach Prometheus through nginx, and status shows each check's values
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _query(site, 'mlcd_rollout_phase{phase="promoted"} == 1'):
        time.sleep(0.5)
    assert _query(site, 'mlcd_rollout_phase{phase="promoted"} == 1')
    assert {r["metric"]["check"] for r in _query(site, "mlcd_rollout_check_value")} == {
        "error_ratio", "latency_p99", "prediction_mix"
    }  # fmt: skip
    status = reproduced_repo.mlcd(
        "deploy", "status", "--environment", ENVIRONMENT, "--state-dir", str(site.state)
    )
    assert (
        "live: green" in status.stderr
        and "step 50% from" in status.stderr
        and "prediction_mix: pass" in status.stderr
    )
    back = reproduced_repo.mlcd("rollback", "--environment", ENVIRONMENT, "--state-dir", str(site.state))
    assert "rolled back to blue" in back.stderr  # the stable colour was kept
    assert httpx.post(f"{site.public}/predict", json=_records(v1)).json()["model"]["hash"] == v1.model_hash


@pytest.mark.parametrize(
    "fault, failing", [("error", "error_ratio"), ("slow", "latency_p99"), ("skew", "prediction_mix")]
)
def test_a_faulty_candidate_is_rolled_back_by_itself(releases, faulty, reproduced_repo, site, fault, failing):
    v1, bad = releases["v1"], faulty[fault]
    with Load(site.public, _records(v1)) as load:
        started = time.monotonic()
        done = reproduced_repo.mlcd(
            "deploy",
            bad.image,
            "--bundle",
            str(bad.bundle),
            "--strategy",
            "canary",
            *site.options(),
            check=False,
        )
        took = time.monotonic() - started
        after = load.total
        time.sleep(1)
    failed_share = len(load.failed) / load.total
    record = _rollout(site)
    first, last = record["steps"][0]["started_at"], record["steps"][-1]["analyses"][-1]["at"]
    judged = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    kinds = sorted({failure.split(" ")[0] for failure in load.failed})
    print(
        f"\n{fault}: rolled back {judged:.0f} s after the first step ({took:.1f} s in all); {load.total} "
        f"requests, {len(load.failed)} failed ({failed_share:.2%}; {', '.join(kinds) or '-'})"
    )
    assert done.returncode == 2, done.stderr
    assert "rolled back" in done.stderr and failing in done.stderr, done.stderr
    assert record["phase"] == "rolled back" and record["failures"] == 2
    assert [s["weight"] for s in record["steps"]] == [10]  # never went past the first step
    failed_checks = {
        c["name"] for a in record["steps"][0]["analyses"] for c in a["checks"] if c["verdict"] == "fail"
    }
    assert failing in failed_checks
    # Clients saw at most the failing step's share of failures, and none after the rollback
    assert failed_share < 0.10
    tail = load.colours[after:]
    assert tail and set(tail) == {"blue"}
    state = json.loads((site.state / "state.json").read_text())
    assert state["live"]["colour"] == "blue" and state["live"]["image"] == v1.image


def test_too_little_traffic_waits_then_judges_when_traffic_comes(releases, reproduced_repo, site):
    import subprocess
    import sys

    v1, v2 = releases["v1"], releases["v2"]
    command = [
        sys.executable,
        "-m",
        "mlcd",
        "deploy",
        v2.image,
        "--bundle",
        str(v2.bundle),
        "--strategy",
        "canary",
        *site.options(),
    ]
    rollout = subprocess.Popen(
        command, cwd=reproduced_repo.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60  # the candidate starting, then two quiet checks
        while time.monotonic() < deadline:
            record = _rollout(site) if (site.state / "rollout.json").exists() else None
            analyses = record["steps"][0]["analyses"] if record and record["steps"] else []
            if len(analyses) >= 2:
                break
            time.sleep(0.5)
        assert [a["verdict"] for a in analyses[:2]] == ["inconclusive", "inconclusive"]
        assert rollout.poll() is None  # waiting, not rolled back
        with Load(site.public, _records(v1)):
            _, stderr = rollout.communicate(timeout=120)
    finally:
        rollout.kill()
    assert rollout.returncode == 0, stderr
    assert "inconclusive" in stderr and "after every canary step passed" in stderr
    record = _rollout(site)
    assert record["failures"] == 0 and record["phase"] == "promoted"


def test_a_shadow_changes_nothing_clients_see_and_promotes_only_when_asked(
    releases, faulty, reproduced_repo, site
):
    v1, v2, broken = releases["v1"], releases["v2"], faulty["slow"]
    records = _records(v1)
    with Load(site.public, records) as alone:
        time.sleep(5)
    with Load(site.public, records) as shadowed:
        done = reproduced_repo.mlcd(
            "deploy", broken.image, "--bundle", str(broken.bundle), "--strategy", "shadow", *site.options()
        )
    assert "blue keeps serving" in done.stderr and "agreement" in done.stderr, done.stderr
    for load in (alone, shadowed):
        assert load.failed == [] and set(load.answered) == {v1.model_hash} and set(load.colours) == {"blue"}
    p99 = {
        name: sorted(load.seconds)[int(len(load.seconds) * 0.99)]
        for name, load in (("alone", alone), ("shadowed", shadowed))
    }
    print(
        f"\nclient p99 without a shadow {p99['alone'] * 1000:.1f} ms, "
        f"with a slow one {p99['shadowed'] * 1000:.1f} ms"
    )
    assert p99["shadowed"] < max(3 * p99["alone"], 0.05)
    record = _rollout(site)
    assert record["phase"] == "reported" and record["shadow"]["mirrored"] > 50
    assert record["shadow"]["latency_p50_seconds"] >= 0.05  # the judge saw the candidate's delay
    # A good candidate agrees with the stable one and is promoted when asked
    with Load(site.public, records) as load:
        done = reproduced_repo.mlcd(
            "deploy",
            v2.image,
            "--bundle",
            str(v2.bundle),
            "--strategy",
            "shadow",
            "--promote-if-agree",
            "0.99",
            *site.options(),
        )
    assert "green is live" in done.stderr and "after the shadow agreed" in done.stderr, done.stderr
    assert load.failed == []
    shadow = _rollout(site)["shadow"]
    assert shadow["agreement"] == 1.0 and shadow["compared_records"] >= 100 and shadow["error_ratio"] == 0


def test_a_prometheus_that_does_not_answer_stops_the_canary_before_anything_starts(
    releases, reproduced_repo, site
):
    v2 = releases["v2"]
    down = f"http://127.0.0.1:{free_port_run(1)}"  # nothing listens there
    options = [o if o != site.prometheus else down for o in site.options()]
    failed = reproduced_repo.mlcd(
        "deploy", v2.image, "--bundle", str(v2.bundle), "--strategy", "canary", *options, check=False
    )
    assert failed.returncode == 2
    assert f"cannot query Prometheus at {down}" in failed.stderr and "--prometheus" in failed.stderr
    state = json.loads((site.state / "state.json").read_text())
    assert state["live"]["colour"] == "blue"  # nothing moved, no rollout began
    assert not (site.state / "rollout.json").exists()


@pytest.mark.ci
@pytest.mark.needs_node
def test_the_production_deploy_job_rolls_a_faulty_promotion_back(
    releases, faulty, reproduced_repo, site, tmp_path
):
    """The real .gitlab-ci.yml's deploy-production (gitlab-ci-local, shell), started as a person
    would after `mlcd promote 1.1.0 production`: its canary meets the 5xx fault on live traffic,
    rolls back by itself and fails the job; production serves v1.0.0 throughout."""
    from mlcd.container.podman import CONTAINERS_CONF, podman

    from ..ci import tools
    from ..ci.gitlab_ci_local import GitlabCiLocal, shared_bytecode, shared_uv_cache
    from ..helpers import add_every_tracked_file, clone_repo

    v1, bad = releases["v1"], faulty["error"]
    # Ports chosen now: a run chosen when the module started may since have become some client's
    # ephemeral port (both come from the same range), and podman could not bind it.
    production = PodmanBackend("production", site.production.state_dir, free_port_run())
    project = clone_repo(reproduced_repo, tmp_path / "repo")
    add_every_tracked_file(project)
    (project.path / "deploy" / "rollout.yaml").write_text(yaml.safe_dump(ROLLOUT))  # a team's short steps
    project.commit("CI and a rollout spec with short steps")
    project.dvc("push")
    project.mlcd("release", "1.0.0")
    stable = f"localhost/mlcd-ci-production:{project.run('git', 'rev-parse', 'HEAD').stdout.strip()}"
    project.set_params(**{"train.logistic_regression.C": 0.5})  # v2's model (conftest.releases)
    project.dvc("repro")
    project.commit("C=0.5")
    project.dvc("push")
    project.mlcd("release", "1.1.0")
    candidate = f"localhost/mlcd-ci-production:{project.run('git', 'rev-parse', 'HEAD').stdout.strip()}"
    # Each version's pipeline pushed its image (<repo>:<commit>); 1.1.0's answers 5xx on live traffic.
    podman("tag", v1.image, stable)
    podman("tag", bad.image, candidate)
    try:
        project.mlcd(
            "deploy", stable, "--bundle", str(v1.bundle), "--environment", "production",
            "--port", str(production.port), "--state-dir", str(production.state_dir),
        )  # fmt: skip
        project.mlcd("promote", "1.1.0", "production", "--no-image-check")
        gitlab = GitlabCiLocal(
            tools.gitlab_ci_local(),
            project.path,
            {
                **shared_uv_cache(),
                **shared_bytecode(tmp_path / "bytecode"),
                "DVC_REMOTE_URL": str(project.remote),
            },
        )
        variables = {
            "CI_COMMIT_TAG": "model#production#1",
            "CI_REGISTRY_IMAGE": "localhost/mlcd-ci-production",
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
            "DEPLOY_BACKEND": "podman",
            "MLCD_DEPLOY_PORT": str(production.port),
            "MLCD_DEPLOY_STATE_DIR": str(production.state_dir),
            "MLCD_PROMETHEUS_URL": site.prometheus,
        }
        public = f"http://127.0.0.1:{production.port}"
        with Load(public, _records(v1)) as load:
            run = gitlab.run("deploy-production", variables=variables, unset=("CI_COMMIT_BRANCH",))
            after = load.total
            time.sleep(1)
        assert run.results == {"deploy-production": "FAIL"}, run.explain()
        log = run.log("deploy-production")
        assert "production <- model@v1.1.0" in log and "canary" in log, log[-3000:]
        assert "rolled back" in log and "error_ratio" in log, log[-3000:]
        state = json.loads((production.state_dir / "state.json").read_text())
        assert state["live"]["image"] == stable
        assert set(load.colours[after:]) == {state["live"]["colour"]}  # only v1.0.0 once rolled back
        assert len(load.failed) / load.total < 0.10
        answer = httpx.post(f"{public}/predict", json=_records(v1)).json()
        assert answer["model"]["hash"] == v1.model_hash
    finally:
        production.teardown()
        podman("rmi", stable, candidate, check=False)  # the tags only: the images stay for other tests
