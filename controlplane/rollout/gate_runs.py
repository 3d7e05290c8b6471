"""Gate runs in the rollout: which gates guard which transition, their Workflow names, parameters.

Owns the vocabulary of ``spec.gates`` that the machine and the controller's Argo runner share:
the gate points, the deterministic Workflow name of a run (a re-submission after a crash is an
AlreadyExists; a new rollout gets a new name), the runs to submit, poll or stop, and the
``{{placeholder}}`` parameters. Pure. See docs/gates.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from controlplane.rollout.state import GateState, RolloutState
from controlplane.serving.object_names import dns_name
from controlplane.spec.models import GateSpec, ModelCanary

PROMOTION = "promotion"
FINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Error"})
"""Argo phases after which a Workflow runs no more."""
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


def step_point(step_index: int) -> str:
    """The gate point before the 0-based step ``step_index`` begins (``step-1`` for index 0)."""
    return f"step-{step_index + 1}"


def describe_point(point: str) -> str:
    """``step-2`` -> ``step 2``; ``promotion`` as it is."""
    return point.replace("-", " ") if point.startswith("step-") else point


def point_step(spec: ModelCanary, point: str) -> int:
    """The 1-based step a gate point leads into (the last step for ``promotion``)."""
    if point == PROMOTION:
        return len(spec.spec.steps)
    return int(point.removeprefix("step-"))


def gates_at(spec: ModelCanary, point: str) -> list[GateSpec]:
    """The gates that run at ``point``, in spec order."""
    found = []
    for gate in spec.spec.gates:
        if point == PROMOTION:
            due = gate.before == "promotion"
        else:
            number = point_step(spec, point)
            due = (
                gate.before == "each-step"
                or (gate.before == "first-step" and number == 1)
                or (gate.before == "step" and number in gate.steps)
            )
        if due:
            found.append(gate)
    return found


def run_key(gate: str, point: str) -> str:
    """The key of one gate run in ``RolloutState.gates``: ``regression@step-2``."""
    return f"{gate}@{point}"


def workflow_name(spec: ModelCanary, state: RolloutState, gate: str, point: str) -> str:
    """The Argo Workflow's name for ``gate`` at ``point`` of this rollout (a DNS label of at
    most 63 characters, as Argo's own labels need): ``<canary>-<gate>-<point>-<8 hex>`` where
    the hex digits hash the spec hash and the rollout's start, so that a retried or restarted
    rollout gets new Workflows while a crashed controller finds the same one again."""
    rollout = f"{state.spec_hash}:{state.started_at!r}"
    digest = hashlib.sha256(rollout.encode()).hexdigest()[:8]
    return dns_name(spec.metadata.name, gate, point, digest)


@dataclass(frozen=True)
class GateRun:
    """A gate run the controller must submit (if not yet) and poll: ``gate`` is its spec,
    ``key`` / ``workflow`` / ``namespace`` / ``submitted_at`` come from the state; ``step`` is
    the 1-based step the point leads into and ``weight`` the candidate's weight meanwhile."""

    key: str
    gate: GateSpec
    point: str
    workflow: str
    namespace: str
    submitted_at: float
    step: int
    weight: int


def pending_runs(spec: ModelCanary, state: RolloutState) -> list[GateRun]:
    """The gate runs still running at the current gate point (none once terminal)."""
    if state.terminal or state.gate_point is None:
        return []
    return _runs(
        spec, state, lambda _, run: run.result == "running" and run.point == state.gate_point
    )


def abandoned_runs(
    spec: ModelCanary, state: RolloutState, submitted: Collection[str]
) -> list[GateRun]:
    """Gate runs whose Workflows were ``submitted`` and may still run though the rollout no
    longer waits for them: the last phase seen was not a final one, and the machine does not
    wait for the run (it rolled back, was aborted or ended, or the run timed out). The
    controller stops them."""
    waiting = {run.key for run in pending_runs(spec, state)}
    return [r for r in unfinished_runs(spec, state, submitted) if r.key not in waiting]


def unfinished_runs(
    spec: ModelCanary, state: RolloutState, submitted: Collection[str]
) -> list[GateRun]:
    """Gate runs of ``state`` whose Workflows were ``submitted`` and last seen unfinished
    (awaited or not); ``spec`` supplies the gates by name (a gate no longer in it is left out)."""

    def keep(_: str, run: GateState) -> bool:
        return run.workflow in submitted and run.phase not in FINAL_PHASES

    return _runs(spec, state, keep)


def _runs(
    spec: ModelCanary, state: RolloutState, keep: Callable[[str, GateState], bool]
) -> list[GateRun]:
    """The state's gate runs (by key) that ``keep`` selects, as :class:`GateRun`."""
    by_name = {gate.name: gate for gate in spec.spec.gates}
    runs = []
    for key, run in state.gates.items():
        gate = by_name.get(run.gate)
        if gate is None or not keep(key, run):
            continue
        runs.append(
            GateRun(
                key=key,
                gate=gate,
                point=run.point,
                workflow=run.workflow,
                namespace=run.namespace,
                submitted_at=run.submitted_at,
                step=point_step(spec, run.point),
                weight=state.weight,
            )
        )
    return runs


def placeholder_values(
    spec: ModelCanary, run: GateRun, endpoints: Mapping[str, str]
) -> dict[str, str]:
    """The value of every gate placeholder for ``run``; ``endpoints`` maps ``candidate`` /
    ``stable`` to their in-cluster base URLs (the controller reads them from the serving
    objects)."""
    s = spec.spec
    return {
        "canary": spec.metadata.name,
        "namespace": spec.metadata.namespace,
        "model": s.model.name,
        "step": str(run.step),
        "weight": str(run.weight),
        "point": run.point,
        "gate": run.gate.name,
        "candidate": s.candidate.name,
        "stable": s.stable.name,
        "candidate.endpoint": endpoints.get("candidate", ""),
        "stable.endpoint": endpoints.get("stable", ""),
        "candidate.storageUri": s.candidate.storage_uri,
        "candidate.quantization": s.candidate.quantization,
        "stable.storageUri": s.stable.storage_uri,
        "stable.quantization": s.stable.quantization,
    }


def render_parameters(
    spec: ModelCanary, run: GateRun, endpoints: Mapping[str, str]
) -> dict[str, str]:
    """The gate's ``parameters`` with every ``{{placeholder}}`` replaced (validation has made
    sure each is known; an unknown one is left as written)."""
    values = placeholder_values(spec, run, endpoints)

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return {name: _PLACEHOLDER.sub(fill, value) for name, value in run.gate.parameters.items()}
