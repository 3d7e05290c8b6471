"""The controller's effects of the machine's gate decisions: submit, poll and stop Workflows.

Owns :class:`GateEffects`: it submits each due run's Workflow (recorded in
``controller.gatesSubmitted``), polls the submitted ones for the machine, and stops those no
rollout waits for. Which runs are due is :mod:`controlplane.rollout.gate_runs`'s. Called by the
reconciler. See docs/gates.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from controlplane.controller.argo_gates import GateRunner
from controlplane.controller.children import FIELD_MANAGER
from controlplane.controller.context import Ctx, event
from controlplane.kube.client import KubeClient
from controlplane.rollout.gate_runs import abandoned_runs, pending_runs, unfinished_runs
from controlplane.rollout.observations import GateObservation
from controlplane.rollout.state import RolloutState

log = logging.getLogger(__name__)


class GateEffects:
    """Submits, polls and stops the gate Workflows of the canaries one reconciler serves;
    ``gates`` is None when the controller runs without an Argo Server (a gated canary then
    pauses after ``analysis.errorLimit`` polls and says why)."""

    def __init__(self, kube: KubeClient, gates: GateRunner | None) -> None:
        self.kube = kube
        self.gates = gates
        self._stop_warned: set[str] = set()  # Workflows whose failed stop was announced

    def submit(self, ctx: Ctx, endpoints: Callable[[Ctx], dict[str, str]]) -> None:
        """Submit the Workflow of every gate run the persisted state waits for and that the
        Argo Server has not accepted yet (an effect of the persisted decision); ``endpoints``
        reads the variants' base URLs for the parameters."""
        current = {run.workflow for run in ctx.state.gates.values()}
        submitted = tuple(n for n in ctx.book.gates_submitted if n in current)
        runs = [r for r in pending_runs(ctx.canary, ctx.state) if r.workflow not in submitted]
        if runs and self.gates is not None:
            urls = endpoints(ctx)
            for run in runs:
                problem = self.gates.submit(ctx.canary, run, urls, ctx.state.spec_hash)
                if problem is not None:
                    ctx.gate_problems[run.key] = problem
                    continue
                submitted = (*submitted, run.workflow)
                text = (
                    f"submitted workflow {run.namespace}/{run.workflow} for gate "
                    f"{run.gate.name} ({run.point})"
                )
                event(self.kube, ctx.obj, "GateSubmitted", text)
        if submitted != ctx.book.gates_submitted:
            ctx.book = replace(ctx.book, gates_submitted=submitted)

    def stop_abandoned(self, ctx: Ctx) -> None:
        """Stop the Workflows of gate runs the rollout no longer waits for (an effect of the
        persisted state, :func:`~controlplane.rollout.gate_runs.abandoned_runs`): submitted, last
        seen unfinished, and not awaited (the rollout rolled back, was aborted or ended, or the
        run timed out). A stop that fails stays in ``controller.gatesSubmitted`` and is tried
        again."""
        if self.gates is None:
            return
        stopped: list[str] = []
        for run in abandoned_runs(ctx.canary, ctx.state, ctx.book.gates_submitted):
            why = (
                f"the rollout ended ({ctx.state.stage.replace('_', ' ')})"
                if ctx.state.terminal
                else "the rollout no longer waits for it"
            )
            error = self.gates.stop(ctx.canary, run, f"stopped by {FIELD_MANAGER}: {why}")
            where = f"workflow {run.namespace}/{run.workflow} of gate {run.gate.name} ({run.point})"
            if error is not None:
                self._stop_failed(ctx, run.workflow, f"{where}: {error}")
                continue
            self._stop_warned.discard(run.workflow)
            stopped.append(run.workflow)
            event(self.kube, ctx.obj, "GateStopped", f"{where} is not running now: {why}")
        if stopped:
            left = tuple(n for n in ctx.book.gates_submitted if n not in stopped)
            ctx.book = replace(ctx.book, gates_submitted=left)

    def stop_previous(self, ctx: Ctx, previous: RolloutState) -> None:
        """A new rollout began (a spec change or ``retry``): stop the Workflows its predecessor
        left running. Best effort, once: the new state no longer records those runs, so a stop
        that fails (a Warning event) or a crash before it leaves the Workflow to its own
        ``activeDeadlineSeconds``."""
        if self.gates is None:
            return
        why = "a new rollout of the canary began"
        for run in unfinished_runs(ctx.canary, previous, ctx.book.gates_submitted):
            where = f"workflow {run.namespace}/{run.workflow} of gate {run.gate.name} ({run.point})"
            error = self.gates.stop(ctx.canary, run, f"stopped by {FIELD_MANAGER}: {why}")
            if error is not None:
                self._stop_failed(ctx, run.workflow, f"{where}: {error}")
            else:
                event(self.kube, ctx.obj, "GateStopped", f"{where} is not running now: {why}")

    def _stop_failed(self, ctx: Ctx, workflow: str, text: str) -> None:
        """One ``GateStopFailed`` warning per Workflow and controller process (the stop is
        retried at every poll; an Event each time would flood the canary's events)."""
        if workflow in self._stop_warned:
            log.info("still cannot stop %s", text)
            return
        self._stop_warned.add(workflow)
        event(self.kube, ctx.obj, "GateStopFailed", text, "Warning")

    def poll(self, ctx: Ctx) -> dict[str, GateObservation]:
        """What the Argo Server says about each running gate of the persisted state."""
        found: dict[str, GateObservation] = {}
        for run in pending_runs(ctx.canary, ctx.state):
            if run.key in ctx.gate_problems:
                found[run.key] = ctx.gate_problems[run.key]
            elif self.gates is None:
                found[run.key] = GateObservation(
                    run.key,
                    run.workflow,
                    None,
                    error="the controller runs without gates (no --argo-server)",
                )
            elif run.workflow in ctx.book.gates_submitted:
                found[run.key] = self.gates.poll(ctx.canary, run)
        ctx.gate_problems = {}
        return found
