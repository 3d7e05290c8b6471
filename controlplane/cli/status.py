"""``kubectl canary status NAME [-w] [--timeout D] [-o json|yaml]``: the outcome as an exit code.

Owns the verb scripts and CI use to wait for a rollout (codes from :mod:`controlplane.cli.exits`).
A status for an older generation of the spec, or none yet, counts as in progress: right after
``kubectl apply`` the old outcome is not the answer. See docs/cli.md, "``status``: exit codes".
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controlplane.cli import cluster, output
from controlplane.cli.exits import (
    EXIT_IN_PROGRESS,
    EXIT_INVALID,
    EXIT_PAUSED,
    EXIT_PROMOTED,
    EXIT_ROLLED_BACK,
)
from controlplane.cli.follow import follow
from controlplane.kube.client import Obj
from controlplane.operations import get_canary
from controlplane.view.canary import CanaryView, human, snapshot


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status",
        help="a canary's outcome as an exit code (-w: wait for it)",
        description="Print a canary's outcome and exit with it: 0 promoted, 1 error, "
        "2 usage error or invalid spec, 3 in progress or timed out, 4 paused or awaiting "
        "approval, 5 rolled back.",
    )
    parser.add_argument("name", metavar="NAME", help="the ModelCanary")
    parser.add_argument(
        "-w", "--watch", action="store_true", help="wait until promoted, rolled back or paused"
    )
    parser.add_argument(
        "--timeout", metavar="DURATION", help="give up waiting after DURATION (exit 3); implies -w"
    )
    cluster.add_cluster_args(parser)
    output.add_output_arg(parser)


def outcome(snap: CanaryView) -> tuple[str, int]:
    """The outcome word (``promoted``, ``rolled_back``, ``paused``, ``awaiting_approval``,
    ``invalid``, ``in_progress``) and the exit code of ``snap``."""
    if snap.stale:
        return "in_progress", EXIT_IN_PROGRESS
    if snap.phase == "promoted":
        return "promoted", EXIT_PROMOTED
    if snap.phase == "rolled_back":
        return "rolled_back", EXIT_ROLLED_BACK
    if snap.phase == "paused":
        return "paused", EXIT_PAUSED
    if snap.phase == "awaiting_approval":
        return "awaiting_approval", EXIT_PAUSED
    if snap.phase == "invalid":
        return "invalid", EXIT_INVALID
    return "in_progress", EXIT_IN_PROGRESS


def describe(snap: CanaryView) -> str:
    """One line about where the rollout stands (no clock-dependent parts)."""
    word, _code = outcome(snap)
    where = f"step {snap.stage_label()} at weight {snap.weight}%"
    if snap.stage == "shadow":
        where = "shadow (mirroring, weight 0%)"
    if not snap.phase:
        return "waiting for the controller to pick it up"
    if snap.stale:
        return (
            f"waiting for the controller to act on generation {snap.generation} "
            f"(status is for {snap.observed_generation}, {snap.phase})"
        )
    if word == "promoted":
        return f"promoted: candidate {snap.candidate} serves 100%"
    if word == "rolled_back":
        return f"rolled back: {snap.reason or 'no reason recorded'}"
    if word == "invalid":
        problems = (
            "; ".join(snap.problems[:3])
            or f"see: kubectl canary get {snap.name} -n {snap.namespace}"
        )
        return f"spec is invalid: {problems} (fix the spec and apply it again)"
    if word == "paused":
        hint = f"resume with: kubectl canary resume {snap.name} -n {snap.namespace}"
        if snap.paused in ("errors", "gate-errors"):
            hint = "it resumes by itself once the errors stop"
        return f"paused {snap.paused_by()} at {where}: {snap.reason or '-'} ({hint})"
    if word == "awaiting_approval":
        return (
            f"awaiting approval at {where}: step {snap.step} is done "
            f"(approve with: kubectl canary promote {snap.name} -n {snap.namespace})"
        )
    if snap.phase == "gated":
        running = [g.gate for g in snap.gates if g.result == "running"]
        return f"gated at {where}: waiting for {', '.join(running) or 'its gates'}"
    if snap.phase == "pending":
        return f"pending: {snap.pending_why(None)}"
    if snap.phase == "holding":
        held = [r.message for r in snap.checks if r.verdict == "inconclusive" and r.message]
        if held:
            return f"holding, {where}: inconclusive: {'; '.join(held)}"
    return f"{snap.phase}, {where}"


def summary(snap: CanaryView, now: float, *, timed_out: bool) -> dict[str, Any]:
    """The ``-o json|yaml`` object."""
    word, code = outcome(snap)
    return {
        "namespace": snap.namespace,
        "name": snap.name,
        "outcome": word,
        "exitCode": code,
        "timedOut": timed_out,
        "phase": snap.phase or None,
        "step": snap.step,
        "steps": snap.steps,
        "weight": snap.weight,
        "secondsInStep": snap.in_stage(now),
        "secondsLeft": snap.left(now),
        "reason": snap.reason or None,
        "problems": list(snap.problems),
        "message": describe(snap),
        "generation": snap.generation,
        "observedGeneration": snap.observed_generation,
    }


def run(args: argparse.Namespace) -> int:
    timeout = cluster.parse_timeout(args.timeout)
    watch = args.watch or timeout is not None
    namespace = cluster.namespace_of(args)
    kube = cluster.connect(args)
    runtime = cluster.runtime_of(args)
    label = f"modelcanary {namespace}/{args.name}"
    text = args.output == "text"
    timed_out = False
    if watch:
        printed: list[str] = []

        def progress(obj: Obj, changed: bool) -> None:
            line = describe(snapshot(obj))
            if text and changed and (not printed or printed[-1] != line):
                printed.append(line)
                print(f"{label}: {line}", flush=True)

        def finished(obj: Obj) -> bool:
            return outcome(snapshot(obj))[1] != EXIT_IN_PROGRESS

        followed = follow(
            kube,
            namespace,
            args.name,
            runtime,
            done=finished,
            timeout_s=timeout,
            on_update=progress,
        )
        obj, timed_out = followed.obj, followed.timed_out
    else:
        obj = get_canary(kube, namespace, args.name)
    snap = snapshot(obj)
    now = runtime.clock()
    word, code = outcome(snap)
    if not text:
        output.emit(summary(snap, now, timed_out=timed_out), args.output, sys.stdout)
        return code
    if not watch:
        line = describe(snap)
        if word == "in_progress" and snap.phase in (
            "progressing",
            "holding",
            "throttled",
            "shadow",
        ):
            spent, left = snap.in_stage(now), snap.left(now)
            line += f" ({human(spent)} in stage" + (
                f", {human(left)} left)" if left is not None else ")"
            )
        print(f"{label}: {line}")
    if timed_out:
        assert timeout is not None
        print(
            f"error: timed out after {human(timeout)} waiting for {label} "
            f"(still {snap.phase or 'not picked up'}; exit {code})",
            file=sys.stderr,
        )
    return code


__all__ = [
    "add_parser",
    "describe",
    "outcome",
    "run",
    "summary",
]
