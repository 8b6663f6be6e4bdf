"""The rollout checks as PromQL: the one owner of the queries that judge a candidate.

The local canary controller, `mlcd deploy render` (Flagger MetricTemplates, Argo AnalysisTemplates)
and promtool's tests all take their queries from here. A check is one expression whose value must
stay at or below a limit, so each engine asks the same question: only the label matchers that pick
the candidate's and the stable version's series (and the window) differ between engines.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcd.deploy.rollout_spec import Thresholds

# The server's endpoints that carry predictions (the `endpoint` label of mlcd_requests_total).
WORK_ENDPOINTS = "/predict|/invocations|/v2/models/.+/infer"


@dataclass(frozen=True)
class Versions:
    """Label matchers for the candidate's and the stable version's series, and the window."""

    candidate: str  # e.g. environment="production",colour="green"
    stable: str
    window: str  # a PromQL duration: 30s, or an engine's template such as {{ interval }}


@dataclass(frozen=True)
class Check:
    name: str
    query: str  # one value; the check passes when it is at most `limit`
    limit: float
    candidate: str  # the candidate's own figure and the stable one's, shown beside the verdict
    stable: str


def requests(matchers: str, window: str) -> str:
    return f'sum(increase(mlcd_requests_total{{{matchers},endpoint=~"{WORK_ENDPOINTS}"}}[{window}]))'


def error_ratio(matchers: str, window: str) -> str:
    selected = f'{matchers},endpoint=~"{WORK_ENDPOINTS}",status=~"5.."'
    errors = f"sum(increase(mlcd_requests_total{{{selected}}}[{window}]))"
    return f"(({errors}) or vector(0)) / {requests(matchers, window)}"


def latency_p99(matchers: str, window: str) -> str:
    buckets = f'mlcd_request_duration_seconds_bucket{{{matchers},endpoint=~"{WORK_ENDPOINTS}"}}'
    return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{window}])))"


def class_shares(matchers: str, window: str) -> str:
    counts = f"increase(mlcd_predictions_total{{{matchers}}}[{window}])"
    return f"(sum by (label) ({counts}) / scalar(sum({counts})))"


def mix_distance(versions: Versions) -> str:
    """Jensen-Shannon distance (base 2) of the two class mixes, as scipy's jensenshannon(p, q, 2).

    A class only one version answered is 0 in the other (`or ... * 0`); terms of a zero share are
    left out (`> 0` filters them), as 0 · log 0 = 0; rounding cannot take the root below 0."""
    p = class_shares(versions.candidate, versions.window)
    q = class_shares(versions.stable, versions.window)
    pp, qq = f"({p} or ({q} * 0))", f"({q} or ({p} * 0))"
    middle = f"(({pp} + {qq}) / 2)"
    half = "(sum(({x} > 0) * log2(({x} > 0) / {m})) or vector(0))"
    divergence = f"({half.format(x=pp, m=middle)} + {half.format(x=qq, m=middle)}) / 2"
    return f"sqrt(clamp_min({divergence}, 0))"


def _value_mean(matchers: str, window: str) -> str:
    return (
        f"(sum(increase(mlcd_predicted_value_sum{{{matchers}}}[{window}]))"
        f" / sum(increase(mlcd_predicted_value_count{{{matchers}}}[{window}])))"
    )


def prediction_shift(versions: Versions) -> str:
    """|candidate mean - stable mean| in standard deviations of the stable version's answers."""
    s, w = versions.stable, versions.window
    squares = (
        f"(sum(increase(mlcd_predicted_value_squares_total{{{s}}}[{w}]))"
        f" / sum(increase(mlcd_predicted_value_count{{{s}}}[{w}])))"
    )
    sd = f"sqrt(clamp_min({squares} - {_value_mean(s, w)} ^ 2, 1e-12))"
    return f"abs({_value_mean(versions.candidate, w)} - {_value_mean(s, w)}) / {sd}"


def checks(versions: Versions, thresholds: Thresholds, classifier: bool) -> list[Check]:
    c, s, w = versions.candidate, versions.stable, versions.window
    floor = thresholds.latency_p99_floor_seconds / thresholds.latency_p99_ratio
    found = [
        Check(
            "error_ratio",
            f"{error_ratio(c, w)} - {error_ratio(s, w)}",
            thresholds.error_ratio,
            error_ratio(c, w),
            error_ratio(s, w),
        ),
        # candidate <= max(ratio * stable, floor)  <=>  candidate / max(stable, floor / ratio) <= ratio
        Check(
            "latency_p99",
            f"{latency_p99(c, w)} / clamp_min({latency_p99(s, w)}, {floor:g})",
            thresholds.latency_p99_ratio,
            latency_p99(c, w),
            latency_p99(s, w),
        ),
    ]
    if classifier:
        mix = mix_distance(versions)
        found.append(
            Check("prediction_mix", mix, thresholds.prediction_mix, class_shares(c, w), class_shares(s, w))
        )
    else:
        shift = prediction_shift(versions)
        found.append(
            Check(
                "prediction_shift", shift, thresholds.prediction_shift, _value_mean(c, w), _value_mean(s, w)
            )
        )
    return found
