"""What the analysis tells the state machine: one result per due check, plus spend and gates.

Owns the seam between the producers of observations (analysis, the Argo gate runner, the
controller's readiness and routing observations) and :mod:`controlplane.rollout.machine`. A check
is keyed by where it sits in the spec (``steps[0].rollbackOn[1]``, ``shadow.promoteOn``). Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # an annotation only: the status views read this module without pydantic
    from controlplane.spec.models import CheckSpec

Verdict = Literal["pass", "breach", "inconclusive"]
ArgoPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Error"]

TIME_SLACK_S = 1e-6
"""Seconds of slack when comparing float times (a start plus k intervals, a step's end): the
machine and the analysis must agree on when a step's duration is up."""


@dataclass(frozen=True)
class DueCheck:
    """A check the machine wants evaluated now: where it is (``key``) and what it says.

    ``closes_at``: when the current step's duration is up (its start plus its duration; None
    outside a step or for a step without a duration). A ``judge: sequential`` check with
    ``finalLook`` runs its closing test on the counts up to then, at every evaluation from then
    on (see :mod:`controlplane.analysis.sequential.check`).
    """

    key: str
    check: CheckSpec
    closes_at: float | None = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check at one evaluation.

    ``value`` is what was compared with the thresholds: the candidate's value, or the relative
    drift ``candidate / stable - 1`` for ``compare: baseline``. ``candidate`` / ``stable`` are the
    raw per-variant values when known. ``provider_error`` is True when the result is inconclusive
    because the metric source failed (this, and only this, counts towards ``errorLimit``).
    ``decided`` is set by a sequential judge that reached a conclusion early: ``"pass"`` lets a
    step finish before its duration, ``"breach"`` rolls back. ``load_candidate`` /
    ``load_stable``: requests in flight per replica of each variant over the check's window, for
    a check that compares the variants (:func:`controlplane.promql.queries.load_query`).
    ``evidence`` / ``evidence_bound``: for a ``judge: sequential`` check, the natural log of the
    breach side's e-value at this look and the level it rolls back at, ``log(1 / alpha)`` at
    the anytime test's alpha; None where the judge did not compute it (a tick's batched count
    looks compute it only where it decides: :func:`~controlplane.analysis.sequential.
    count_judges.judge_looks`).
    """

    key: str
    metric: str
    verdict: Verdict
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    samples: float | None = None
    provider_error: bool = False
    message: str = ""
    decided: Literal["pass", "breach"] | None = None
    load_candidate: float | None = None
    load_stable: float | None = None
    evidence: float | None = None
    evidence_bound: float | None = None


@dataclass(frozen=True)
class GateObservation:
    """What the Argo Server said about one gate run's Workflow (``key`` as in
    ``RolloutState.gates``, ``workflow`` its name).

    ``phase`` is the Workflow's phase (an absent phase is ``Pending``); None when the Argo Server
    could not be asked (unreachable, timed out, 5xx), with ``error`` saying why: that counts
    towards ``analysis.errorLimit`` like a provider error and is never a failure by itself.
    ``message`` is Argo's ``status.message``; ``started_at`` / ``finished_at`` are Argo's times
    (unix seconds) when known; ``outputs`` the Workflow's output parameters seen so far.
    """

    key: str
    workflow: str
    phase: ArgoPhase | None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""
    outputs: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Observations:
    """Everything measured at one evaluation time.

    ``spend`` is the candidate's spend over the last day in USD (None: unknown or no budget).
    ``candidate_ready`` is False while the candidate's serving objects are not ready;
    ``not_ready_why`` then says why when the serving layer says (KServe's load failure of a
    crash-looping engine), and the ``not-ready`` rollback's message carries it.
    ``spend_error`` is True when the cost query failed (treated like a provider error).
    ``demand_rps``: with ``spec.capacity``, the requests per second users sent both variants
    over the analysis window (the capacity plan's observed demand; the machine ignores it).
    ``gates`` holds the latest answer about each running gate by key; unlike the checks they are
    taken whenever given (polls are more frequent than evaluations), and repeating one is
    harmless.

    The progress deadline: ``progress_deadline_s`` is the operator's deadline the controller runs
    with (None: none, the rules below never fire; ``canaryctl simulate`` has none).
    ``weights_refused`` is the router's last read-back when it has not put the current stage's
    weights in effect (None: in effect, or not known to be refused). Both are taken whenever
    given: a pending candidate still not ready (``candidate_ready`` False) once the deadline has
    passed since the rollout started is rolled back as ``not-ready``; weights still refused once
    it has passed since the stage started, as ``not-routed``
    (:func:`~controlplane.rollout.schedule.progress_deadline`).
    """

    checks: dict[str, CheckResult] = field(default_factory=dict)
    gates: dict[str, GateObservation] = field(default_factory=dict)
    spend: float | None = None
    spend_error: bool = False
    demand_rps: float | None = None
    candidate_ready: bool = True
    not_ready_why: str | None = None
    progress_deadline_s: float | None = None
    weights_refused: str | None = None
