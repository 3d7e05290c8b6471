"""The contest with the peers as registered before it runs (pure): one SLO, the candidates
defined against it with the verdict each should get, the runs per cell, and the SLO in each
tool's own analysis.

docs/peers.md, "The contest, registered before it runs", is this module in words; the tests
(``tests/harness/test_peers_contest.py``) hold the two to each other.

- **The SLO** (:class:`Slo`), the same for every tool and read at the gateway for the peers:
  the candidate's P95 latency at most :attr:`Slo.latency_ratio` times the stable's in the same
  window and under :attr:`Slo.latency_ceiling_s`; its error share at most
  :attr:`Slo.error_allowance` above the stable's.
- **The candidates** (:func:`contest_candidates`): an A/A control, one well within the SLO, one
  at its edge, two clearly past it (latency twice the bound, errors five times the allowance),
  a slow drift and a crash loop, each with its expected verdict (None at the edge: reported,
  not scored) and when its requests start to breach (:attr:`ContestCandidate.breach_from_s`).
- **The runs** (:data:`RUNS`) and the verdict shares' 95 % intervals (:func:`wilson`).
- **Each tool's analysis of it**: Flagger's MetricTemplates and Rollouts' AnalysisTemplate on
  Traefik's histogram with finer buckets (:data:`TRAEFIK_BUCKETS`), ours as ``rollbackOn``
  checks for each judge (:func:`ours_checks`).

Called by ``bench/peers.py`` once the harness runs the contest; nothing here starts anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from harness.peers.render import DRIFT_PER_MINUTE, Candidate

Verdict = Literal["promoted", "rolled back"]
Judge = Literal["threshold", "sequential"]
TOOLS = ("flagger", "argo-rollouts", "ours:threshold", "ours:sequential")
"""Each tool once, ours twice: with its default judge and with ``judge: sequential``."""


@dataclass(frozen=True)
class Slo:
    """What a candidate must hold to be promoted, for every tool alike."""

    latency_quantile: float = 0.95
    latency_ratio: float = 1.2
    """The candidate's P95 over the stable's P95 in the same window, at most."""
    latency_ceiling_s: float = 2.5
    """The candidate's P95, at most, whatever the stable does."""
    error_allowance: float = 0.01
    """The candidate's error share minus the stable's, at most (1 percentage point)."""
    stable_errors: float = 0.01
    """What the stable fails in every scenario: an A/A control must not be rolled back for the
    stable's own errors."""


SLO = Slo()

TRAEFIK_BUCKETS = (
    *(round(0.05 * i, 2) for i in range(2, 31)),  # 0.10 to 1.50 s, every 50 ms
    2.0,
    2.5,
    3.0,
    4.0,
    5.0,
    10.0,
)
"""The edges Traefik's latency histogram gets in the contest (``--metrics.prometheus.buckets``;
its default 0.1, 0.3, 1.2, 5 s, ``pkg/observability/types/metrics.go`` of Traefik v3.6.12,
cannot tell a P95 1.2 times another in the 0.3 to 1.2 s bucket). 50 ms steps over the engine's
range: a P95 of 0.75 s reads within 7 % of its value."""


@dataclass(frozen=True)
class ContestCandidate:
    """A candidate of the contest: how its engine is made to behave (:attr:`candidate`), the
    verdict written down before any run (None: at the SLO's edge, reported and not scored), why,
    and from when (seconds after its arrival) its requests breach the SLO (None: never)."""

    candidate: Candidate
    expected: Verdict | None
    why: str
    breach_from_s: float | None

    @property
    def name(self) -> str:
        return self.candidate.name


def contest_candidates(
    stable_p95_s: float, stable_median_s: float, slo: Slo = SLO
) -> tuple[ContestCandidate, ...]:
    """The candidates against ``slo`` for a stable whose P95 and median latency were measured
    (at the gateway, before the run). A fixed delay ``d`` makes the candidate's P95
    ``stable_p95_s + d``, so a P95 ratio ``r`` takes ``d = (r - 1) * stable_p95_s``; the drift
    adds :data:`~harness.peers.render.DRIFT_PER_MINUTE` of the median a minute, so it crosses
    the bound once its delay reaches ``(ratio - 1) * stable_p95_s``."""
    bound = slo.latency_ratio
    stable = (f"errors={100 * slo.stable_errors:g}%",)

    def delayed(name: str, ratio: float) -> Candidate:
        delay_ms = (ratio - 1) * stable_p95_s * 1000
        return Candidate(name, (f"latency=+{delay_ms:.0f}ms", *stable))

    drift_per_s = DRIFT_PER_MINUTE * stable_median_s / 60
    crossing_s = (bound - 1) * stable_p95_s / drift_per_s
    errors = slo.stable_errors + 5 * slo.error_allowance
    return (
        ContestCandidate(
            Candidate("control", stable),
            "promoted",
            "the A/A control: the stable's own image and arguments",
            None,
        ),
        ContestCandidate(
            delayed("within", 1 + (bound - 1) / 4),
            "promoted",
            f"P95 {1 + (bound - 1) / 4:g}x the stable's, a quarter of the allowance",
            None,
        ),
        ContestCandidate(
            delayed("edge", bound),
            None,
            f"P95 exactly {bound:g}x the stable's: either verdict is right",
            None,
        ),
        ContestCandidate(
            delayed("latency 2x", 2 * bound),
            "rolled back",
            f"P95 {2 * bound:g}x the stable's, twice the bound",
            0.0,
        ),
        ContestCandidate(
            Candidate("errors 5x", (f"errors={100 * errors:g}%",)),
            "rolled back",
            f"{100 * errors:g} % errors against the stable's {100 * slo.stable_errors:g} %: "
            "five times the allowance over it",
            0.0,
        ),
        ContestCandidate(
            Candidate(
                "drift",
                (f"latency-drift=+{DRIFT_PER_MINUTE * stable_median_s * 1000:.0f}ms/1m", *stable),
            ),
            "rolled back",
            f"as fast as the stable at first, past the bound after {crossing_s:.0f} s",
            crossing_s,
        ),
        ContestCandidate(
            Candidate("crash loop", ("crash-on-start",)),
            "rolled back",
            "its engine dies loading the model, every time",
            0.0,
        ),
    )


CANDIDATES = tuple(c.name for c in contest_candidates(1.0, 1.0))
"""The candidates' names, in the registered order."""
STABLE_INJECT = (f"errors={100 * SLO.stable_errors:g}%",)
"""The stable's faults in every scenario (and the A/A control's)."""


def contest_candidate(
    name: str, stable_p95_s: float, stable_median_s: float, slo: Slo = SLO
) -> ContestCandidate:
    """The candidate called ``name`` of :func:`contest_candidates`."""
    for found in contest_candidates(stable_p95_s, stable_median_s, slo):
        if found.name == name:
            return found
    raise ValueError(f"no candidate {name!r}: {', '.join(CANDIDATES)}")


def p95(seconds: list[float]) -> float:
    """The 95th percentile of ``seconds`` (the nearest rank at or above it: with 100 answers,
    the 95th slowest), as the stable's P95 the candidates are made from."""
    ordered = sorted(seconds)
    if not ordered:
        raise ValueError("no latency to take a P95 of")
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def breaching(candidate: ContestCandidate, sent_after_arrival_s: list[float]) -> int:
    """How many of the requests the candidate served (each sent this many seconds after its
    arrival, before the verdict) were served in breach of the SLO: those from
    :attr:`ContestCandidate.breach_from_s` on, none when it never breaches."""
    if candidate.breach_from_s is None:
        return 0
    return sum(1 for at in sent_after_arrival_s if at >= candidate.breach_from_s)


RUNS = {"control": 10}
"""Runs per tool of a candidate; :data:`RUNS_DEFAULT` for those not named."""
RUNS_DEFAULT = 5


def runs_of(candidate: str) -> int:
    return RUNS.get(candidate, RUNS_DEFAULT)


def wilson(successes: int, runs: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / runs`` (95 % for the default ``z``):
    where the true rate lies, given the runs. ``(0, 1)`` for no run."""
    if runs <= 0:
        return 0.0, 1.0
    share = successes / runs
    center = share + z * z / (2 * runs)
    spread = z * math.sqrt(share * (1 - share) / runs + z * z / (4 * runs * runs))
    scale = 1 + z * z / runs
    return max(0.0, (center - spread) / scale), min(1.0, (center + spread) / scale)


SERIES = "traefik_service_request_duration_seconds"


def traefik_queries(candidate: str, stable: str, window: str, slo: Slo = SLO) -> dict[str, str]:
    """The SLO's three terms as PromQL on Traefik's histogram of the candidate's and the
    stable's Services (their ``service`` labels), over ``window``: ``latency-ratio`` (P95 over
    P95), ``latency`` (the candidate's P95, seconds) and ``error-excess`` (the candidate's 5xx
    share minus the stable's, percentage points)."""
    q = slo.latency_quantile

    def p95(service: str) -> str:
        return (
            f'histogram_quantile({q}, sum(rate({SERIES}_bucket{{service="{service}"}}'
            f"[{window}])) by (le))"
        )

    def errors(service: str) -> str:
        # one minus the share answered without a 5xx, as Flagger's own error-rate templates
        # ask it: a service that has answered no 5xx yet has no 5xx series, and a query on it
        # alone has no value, which Flagger v1.44.0 counts as a failed check
        # (pkg/controller/scheduler_metrics.go: ErrNoValuesFound, "Halt advancement no values
        # found for custom metric") and Rollouts as a failed measurement
        return (
            f'(1 - sum(rate({SERIES}_count{{service="{service}",code!~"5.."}}[{window}])) / '
            f'sum(rate({SERIES}_count{{service="{service}"}}[{window}])))'
        )

    return {
        "latency-ratio": f"{p95(candidate)} / {p95(stable)}",
        "latency": p95(candidate),
        "error-excess": f"100 * ({errors(candidate)} - {errors(stable)})",
    }


def limits(slo: Slo = SLO) -> dict[str, float]:
    """The most each query of :func:`traefik_queries` may read."""
    return {
        "latency-ratio": slo.latency_ratio,
        "latency": slo.latency_ceiling_s,
        "error-excess": 100 * slo.error_allowance,
    }


def flagger_slo(
    namespace: str, prometheus: str, candidate: str, stable: str, slo: Slo = SLO
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The SLO as Flagger v1.44.0 takes an SLO (``docs/gitbook/usage/metrics.md``): one
    MetricTemplate per term, its query over the metric's ``{{ interval }}``, and the Canary's
    ``analysis.metrics`` referring to each with ``thresholdRange.max`` the term's limit (the
    Canary's ``threshold`` of failed checks stays the tutorial's). Returns (templates,
    metrics)."""
    queries = traefik_queries(candidate, stable, "{{ interval }}", slo)
    templates = [
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"provider": {"type": "prometheus", "address": prometheus}, "query": query},
        }
        for name, query in queries.items()
    ]
    metrics = [
        {"name": name, "templateRef": {"name": name}, "thresholdRange": {"max": limit}}
        for name, limit in limits(slo).items()
    ]
    return templates, metrics


def rollouts_slo(
    prometheus: str, candidate: str, stable: str, window: str, failure_limit: int, slo: Slo = SLO
) -> list[dict[str, Any]]:
    """The SLO as an Argo Rollouts v1.10.2 AnalysisTemplate's ``metrics``
    (``docs/features/analysis.md``): one metric per term, measured every ``window`` over
    ``window``, ``successCondition: result[0] <= limit``, and ``failureLimit`` the
    documentation's example's (the failed measurements tolerated). A NaN result (no request in
    the window) fails a measurement whose only condition is ``successCondition`` (its "NaN and
    Infinity" examples): a candidate that serves nothing fails its measurements."""
    queries = traefik_queries(candidate, stable, window, slo)
    return [
        {
            "name": name,
            "interval": window,
            "successCondition": f"result[0] <= {limit:g}",
            "failureLimit": failure_limit,
            "provider": {"prometheus": {"address": prometheus, "query": queries[name]}},
        }
        for name, limit in limits(slo).items()
    ]


def ours_checks(judge: Judge, slo: Slo = SLO) -> list[dict[str, Any]]:
    """The SLO as ours' ``rollbackOn`` for one judge, on the metrics ``latency``
    (``e2e-latency`` at the contest's quantile) and ``errors`` (``error-rate``): the latency
    ratio as ``compare: baseline, above: 20%`` (under ``sequential``, ``test: shift``: every
    latency up to 1.2 times the stable's, docs/judges.md), the ceiling as ``above``, and the
    error allowance relative to the stable's share (ours compares rates as ``candidate /
    stable - 1``: 1 point over 1 % is ``above: 100%``)."""
    ratio = f"{round(100 * (slo.latency_ratio - 1)):d}%"
    errors = f"{round(100 * slo.error_allowance / slo.stable_errors):d}%"
    checks: list[dict[str, Any]] = [
        {"metric": "latency", "compare": "baseline", "above": ratio},
        {"metric": "latency", "above": f"{slo.latency_ceiling_s:g}s"},
        {"metric": "errors", "compare": "baseline", "above": errors},
    ]
    if judge == "sequential":
        for check in checks:
            check["judge"] = "sequential"
        checks[0]["test"] = "shift"
    return checks
