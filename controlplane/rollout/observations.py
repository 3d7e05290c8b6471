"""What the analysis tells the state machine: one result per due check, plus spend and gates.

Owns the seam between the producers of observations (analysis, the Argo gate runner, the
controller's readiness and routing observations) and :mod:`controlplane.rollout.machine`. A check
is keyed by where it sits in the spec (``steps[0].rollbackOn[1]``, ``shadow.promoteOn``). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
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

    ``value``: what was compared (the candidate's, or the drift ``candidate / stable - 1``);
    ``provider_error``: inconclusive because the source failed (only this counts towards
    ``errorLimit``); ``decided``: a sequential judge's early verdict; ``load_*``: requests in flight
    per replica; ``evidence`` / ``evidence_bound``: a sequential check's log e-value and its level.
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
    """What the Argo Server said about one gate run's Workflow (``key`` as in ``RolloutState``).

    ``phase`` None: the server could not be asked, ``error`` says why; that counts towards
    ``analysis.errorLimit`` like a provider error and is never a failure by itself. The rest is
    Argo's: ``message``, the times (unix seconds), the output parameters seen so far.
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
class QualityReading:
    """The quality judge's reading of the pairer, kept across steps (``spec.quality``): the
    pairer's ``epoch`` and the last pair number read (``seq``), the pairs it lost unread, and
    the test of the pairs' scores (:mod:`controlplane.analysis.sequential.mean_eprocess`):
    ``pairs`` folded in, their ``total`` and ``spread``, each side's log capital, ``decided``.
    ``error``: why the last read failed ("" when it did not). Also the record ``RolloutState``
    keeps: the next read starts from it."""

    epoch: str = ""
    seq: int = 0
    lost: int = 0
    pairs: int = 0
    total: float = 0.0
    spread: float = 0.0
    log_breach: float = 0.0
    log_pass: float = 0.0
    decided: Literal["pass", "breach"] | None = None
    error: str = ""

    @property
    def mean(self) -> float | None:
        """The mean score of the pairs read (None before the first)."""
        return self.total / self.pairs if self.pairs else None


@dataclass(frozen=True)
class Readiness:
    """Whether the candidate's served objects are ready and, when one is not, why, in KServe's
    words when KServe says, else None; ``cannot_start`` when its pods say it certainly cannot
    serve (``why`` then says what they say); ``serving`` when it serves its share all the same
    (ready, or one of its pods is Ready and the pairer, if any, is rolled out: one pod of two
    being replaced). Read by :mod:`controlplane.controller.children`."""

    ready: bool
    why: str | None = None
    cannot_start: bool = False
    serving: bool = False


@dataclass(frozen=True)
class Observations:
    """Everything measured at one evaluation time.

    ``spend`` (USD over the last day, None: unknown) and ``spend_error`` (treated like a provider
    error); ``candidate_ready`` and ``not_ready_why`` (carried by the ``not-ready`` message),
    read while pending and, with ``candidate_read``, at an evaluation of a started rollout, and
    ``cannot_start`` when the candidate's pods say it certainly cannot serve (``not_ready_why``
    says what they say: a crash loop, an image that does not exist), and ``candidate_serving``
    when, not ready, it still serves its share (:class:`Readiness`);
    ``demand_rps`` (the capacity plan's observed demand; the machine ignores it); ``gates``, the
    latest answer per running gate, taken whenever given. ``progress_deadline_s`` (None: the
    deadline rules never fire) and ``weights_refused`` (the router's read-back while the stage's
    weights are not in effect) feed the ``not-ready`` and ``not-routed`` rules
    (:func:`~controlplane.rollout.schedule.progress_deadline`).
    """

    checks: dict[str, CheckResult] = field(default_factory=dict)
    gates: dict[str, GateObservation] = field(default_factory=dict)
    spend: float | None = None
    spend_error: bool = False
    demand_rps: float | None = None
    candidate_ready: bool = True
    not_ready_why: str | None = None
    cannot_start: bool = False
    candidate_serving: bool = False
    candidate_read: bool = False
    progress_deadline_s: float | None = None
    weights_refused: str | None = None
    quality: QualityReading | None = None
    """The quality judge's reading of the pairer after this evaluation (``spec.quality``; None:
    not read), recorded with the checks; its ``error`` counts as a provider error."""


def candidate_starved(checks: Mapping[str, CheckResult]) -> bool | None:
    """Whether the candidate finished no request over the checks' windows: True when a check
    counted its requests (a built-in's ``samples``) and none counted one; False when one did;
    None when no check counts them (custom queries alone, or every query failed)."""
    counts = [r.samples for r in checks.values() if r.samples is not None and not r.provider_error]
    if not counts:
        return None
    return all(c <= 0 for c in counts)
