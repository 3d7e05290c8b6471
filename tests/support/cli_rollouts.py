"""Realistic ModelCanary statuses for the ``kubectl canary`` tests, made by the real machine.

Owns :class:`Rollout`: the contract example driven through
:func:`controlplane.rollout.machine.step` (intents and observations as the controller would pass
them) and written as the controller writes it
(:func:`controlplane.status.document.rollout_status`) into a
:class:`~harness.kube.fake.FakeKube`; plus :class:`Clock`, a settable fake clock.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controlplane.errors import Problem
from controlplane.kube.client import Obj
from controlplane.operations import get_canary
from controlplane.rollout import machine, schedule
from controlplane.rollout.intents import Intent, new_intents, read_intents
from controlplane.rollout.observations import CheckResult, Observations
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.status import document as st
from harness.kube.fake import FakeKube
from support.canaries import canary_dict

NS = "ml-serving"
NAME = "support-triage"
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
DAY = 86400.0


class Clock:
    """A clock tests set; ``step`` seconds are added at every reading (0: frozen)."""

    def __init__(self, now: float = T0, step: float = 0.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


Values = dict[str, tuple[str, float | None, float | None, float | None]]
"""metric -> (verdict, compared value, candidate, stable)."""


class Rollout:
    """One canary of the contract example in a FakeKube, moved on by the real state machine."""

    def __init__(
        self,
        kube: FakeKube,
        clock: Clock,
        name: str = NAME,
        namespace: str = NS,
        **spec_changes: Any,
    ) -> None:
        self.kube, self.clock = kube, clock
        data = canary_dict(name, namespace, **spec_changes)
        self.spec = ModelCanary.model_validate(data)
        self.name, self.namespace = name, namespace
        kube.create(data)
        self.state: RolloutState | None = None
        self.book = st.Book()

    @property
    def obj(self) -> Obj:
        return get_canary(self.kube, self.namespace, self.name)

    def start(self, *, ready: bool = True) -> Rollout:
        """Pending, then (when ``ready``) shadow: the first two controller ticks."""
        now = self.clock.now
        self.state = schedule.initial_state(self.spec, now)
        self.state, _ = machine.step(self.spec, self.state, None, now)
        self.state, _ = machine.step(
            self.spec, self.state, Observations(candidate_ready=ready), now
        )
        return self.write()

    def tick(
        self,
        after: float,
        values: Values | None = None,
        intents: tuple[Intent, ...] = (),
        *,
        provider_error: bool = False,
    ) -> Rollout:
        """``after`` seconds later: evaluate the due checks with ``values`` and apply intents."""
        assert self.state is not None, "start() first"
        self.clock.now += after
        now = self.clock.now
        obs = None
        due = schedule.due_checks(self.spec, self.state, now)
        if values is not None or provider_error:
            results = {}
            for check in due:
                verdict, value, candidate, stable = (values or {}).get(
                    check.check.metric, ("inconclusive", None, None, None)
                )
                results[check.key] = CheckResult(
                    key=check.key,
                    metric=check.check.metric,
                    verdict=verdict,  # type: ignore[arg-type]
                    value=value,
                    candidate=candidate,
                    stable=stable,
                    provider_error=provider_error,
                    message=(
                        "prometheus unreachable"
                        if provider_error
                        else f"{check.check.metric}: too few samples: 42 of minSamples 100 "
                        "requests in the window"
                        if verdict == "inconclusive"
                        else ""
                    ),
                )
            obs = Observations(checks=results)
        self.state, _ = machine.step(self.spec, self.state, obs, now, intents)
        return self.write()

    def intent(self, verb: str, after: float = 1.0, user: str = "alice") -> Rollout:
        """``verb`` by ``user``, applied ``after`` seconds later (requested just before)."""
        at = self.clock.now + after - 0.5  # a later CLI intent at the same clock reading wins
        return self.tick(after, intents=(Intent(verb, at, user),))  # type: ignore[arg-type]

    def write(self) -> Rollout:
        """Persist the state as the controller does."""
        assert self.state is not None
        obj = self.obj
        status = st.rollout_status(
            self.state,
            self.book,
            obj["metadata"].get("generation"),
            obj.get("status"),
            self.clock.now,
        )
        obj["status"] = status
        self.kube.replace_status(obj)
        return self

    def invalid(self, *problems: Problem) -> Rollout:
        obj = self.obj
        obj["status"] = st.invalid_status(
            list(problems), obj["metadata"].get("generation"), obj.get("status"), self.clock.now
        )
        self.kube.replace_status(obj)
        return self

    def consume(self) -> Rollout:
        """Act like the controller on the intents recorded on the resource (once each, by id)."""
        assert self.state is not None
        obj = self.obj
        recorded, _ = read_intents(obj["metadata"].get("annotations"))
        new = new_intents(recorded, self.book.last_intent_id)
        if not new:
            return self
        now = self.clock.now
        self.state, _ = machine.step(self.spec, self.state, None, now, [r.intent for r in new])
        self.book = replace(self.book, last_intent_id=new[-1].id)
        return self.write()


def at_step_two(kube: FakeKube, clock: Clock, **changes: Any) -> Rollout:
    """Promoted out of shadow and step 1 by a user, then 3 days into step 2 with kpi evaluated."""
    rollout = Rollout(kube, clock, **changes).start()
    rollout.tick(
        3600, {"win-rate": ("pass", 0.01, 0.01, None), "errors": ("pass", 0.001, 0.001, None)}
    )
    rollout.intent("promote")  # shadow -> step 1
    rollout.tick(
        600,
        {"latency": ("pass", 0.1623, 0.1623, None), "errors": ("pass", 0.0004, 0.0004, None)},
    )
    rollout.intent("promote")  # step 1 -> step 2
    rollout.tick(3 * DAY, {"kpi": ("pass", 0.0137, 0.812, 0.801)})
    return rollout


def in_step_one(kube: FakeKube, clock: Clock) -> Rollout:
    """Out of shadow by a user's promote; step 1 evaluated once, both checks passing."""
    rollout = Rollout(kube, clock).start()
    rollout.intent("promote")
    rollout.tick(
        120,
        {"latency": ("pass", 0.1623, 0.1623, None), "errors": ("pass", 0.0004, 0.0004, None)},
    )
    return rollout


def scenario(name: str, kube: FakeKube, clock: Clock) -> Rollout:
    """A canary in the state ``name`` (see :data:`SCENARIOS`)."""
    if name == "new":
        return Rollout(kube, clock)
    if name == "pending":
        return Rollout(kube, clock).start(ready=False)
    if name == "shadow":
        return (
            Rollout(kube, clock)
            .start()
            .tick(
                DAY + 3600,
                {
                    "win-rate": ("pass", 0.021, 0.021, None),
                    "errors": ("pass", 0.0021, 0.0021, None),
                },
            )
        )
    if name == "progressing":
        return at_step_two(kube, clock)
    if name == "holding":
        return at_step_two(kube, clock).tick(4 * DAY, {"kpi": ("inconclusive", None, None, None)})
    if name == "rolled_back":
        return in_step_one(kube, clock).tick(
            60,
            {"latency": ("breach", 0.4123, 0.4123, None), "errors": ("pass", 0.0004, 0.0004, None)},
        )
    if name == "paused":
        return at_step_two(kube, clock).intent("pause", after=600)
    if name == "paused_errors":
        rollout = at_step_two(kube, clock)
        for _ in range(5):
            rollout.tick(60, provider_error=True)
        return rollout
    if name == "promoted":
        return at_step_two(kube, clock).intent("promote-full", after=3600)
    if name == "invalid":
        return at_step_two(kube, clock).invalid(
            Problem("spec.steps[1].weight", "weights must increase: 25 after 30"),
            Problem("spec.analysis.metrics[3].query", "unknown placeholder {{team}}"),
        )
    raise ValueError(name)


SCENARIOS = (
    "new",
    "pending",
    "shadow",
    "progressing",
    "holding",
    "rolled_back",
    "paused",
    "paused_errors",
    "promoted",
    "invalid",
)
