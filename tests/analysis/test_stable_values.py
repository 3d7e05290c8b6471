"""Integration: absolute checks carry the stable variant's value, for display, on both paths.

Against the real Prometheus of the ``history`` fixture (tests/conftest.py), the per-canary
evaluator and the controller's batched evaluator must report, for an absolute latency check and an
absolute error-rate check, the candidate's value and the stable variant's value that the scenario
put in, with the verdict the candidate alone decides. The batched path must not send more queries
for it.
"""

from __future__ import annotations

import pytest
from support.canaries import model_canary
from support.history import History
from support.scenario import HOUR

from controlplane.analysis.evaluator import evaluate
from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.providers.source import PrometheusSource
from controlplane.rollout.observations import CheckResult, DueCheck

pytestmark = pytest.mark.binary

CANARY = model_canary()
LATENCY = "steps[0].rollbackOn[0]"  # e2e-latency P95 above 300ms
ERRORS = "steps[0].rollbackOn[1]"  # error-rate above 0.1%
DUE = [DueCheck(k, c) for k, c in queries.all_checks(CANARY) if k in (LATENCY, ERRORS)]


def _p95(history: History, role: str, at: float) -> float:
    return history.scenario.expected_quantile(0.95, "e2e-latency", role, at)


def _check(results: dict[str, CheckResult], history: History, at: float) -> None:
    latency, errors = results[LATENCY], results[ERRORS]
    assert latency.candidate == pytest.approx(_p95(history, "candidate", at), rel=1e-6)
    assert latency.stable == pytest.approx(_p95(history, "stable", at), rel=1e-6)
    assert latency.value == latency.candidate  # absolute: judged on the candidate alone
    # the candidate's latency median is 400 ms from day 1 (breach); 100 ms before (pass)
    assert latency.verdict == ("breach" if at - history.scenario.start > 24 * HOUR else "pass")
    assert errors.candidate == pytest.approx(history.scenario.candidate.error_fraction, rel=1e-6)
    assert errors.stable == pytest.approx(history.scenario.stable.error_fraction, rel=1e-6)
    assert errors.verdict == "breach"  # 2% > 0.1%, whatever the stable variant does
    assert not latency.provider_error
    assert not errors.provider_error


@pytest.mark.parametrize("offset_h", [12, 30])
def test_evaluator_reports_candidate_and_stable(history: History, offset_h: int) -> None:
    provider = PrometheusProvider(from_url(history.url, timeout_s=10))
    at = history.scenario.start + offset_h * HOUR
    _check(evaluate(CANARY, DUE, provider, at).checks, history, at)


@pytest.mark.parametrize("offset_h", [12, 30])
def test_batch_reports_candidate_and_stable_without_more_queries(
    history: History, offset_h: int
) -> None:
    batch = BatchEvaluator(PrometheusSource(from_url(history.url, timeout_s=10)))
    at = history.scenario.start + offset_h * HOUR
    observations = batch.evaluate([Request("c", CANARY, DUE)], at)["c"]
    _check(observations.checks, history, at)
    # latency P95, error rate, the shared sample count (one window) and the capacity plan's
    # demand: four grouped queries, plus the budget's cost query (per canary) -- the stable
    # values cost nothing more.
    assert batch.last.grouped_queries == 4
    assert batch.last.queries == 5
