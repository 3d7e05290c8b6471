"""``kubectl canary promote [--full] | abort | pause | resume | retry NAME [--wait]``.

Owns their arguments and what they print. Each records an intent with
:func:`controlplane.operations.record_intent` (refused, exit 2, when
:func:`~controlplane.rollout.intents.check_verb` says the verb means nothing now) and returns;
``--wait`` watches until the controller has consumed it or ``--timeout`` passes (exit 3).
Called by :mod:`controlplane.cli.main`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controlplane.cli import cluster, output
from controlplane.cli.exits import EXIT_IN_PROGRESS
from controlplane.cli.follow import follow
from controlplane.errors import UsageError
from controlplane.operations import record_intent
from controlplane.rollout import intents
from controlplane.status.times import format_time
from controlplane.view.canary import human, snapshot

DEFAULT_WAIT = "2m"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb, what in intents.VERBS.items():
        parser = sub.add_parser(
            verb,
            help=what,
            description=f"{what[0].upper()}{what[1:]}. Recorded on the ModelCanary for the "
            "controller to act on; returns at once unless --wait.",
        )
        parser.add_argument("name", metavar="NAME", help="the ModelCanary")
        if verb == "promote":
            parser.add_argument("--full", action="store_true", help=intents.FULL.replace("%", "%%"))
        parser.add_argument(
            "--wait", action="store_true", help="wait until the controller has acted on it"
        )
        parser.add_argument(
            "--timeout",
            metavar="DURATION",
            help=f"with --wait: give up after DURATION (exit 3; default {DEFAULT_WAIT})",
        )
        cluster.add_cluster_args(parser)
        output.add_output_arg(parser)


def run(args: argparse.Namespace) -> int:
    timeout = cluster.parse_timeout(args.timeout if args.timeout else DEFAULT_WAIT)
    if args.timeout and not args.wait:
        raise UsageError("--timeout only applies with --wait")
    verb = "promote-full" if args.verb == "promote" and args.full else str(args.verb)
    namespace = cluster.namespace_of(args)
    kube = cluster.connect(args)
    runtime = cluster.runtime_of(args)
    recorded = record_intent(
        kube, namespace, args.name, verb, cluster.user_of(args), clock=runtime.clock
    )
    label = f"modelcanary {namespace}/{args.name}"
    said = f"{args.name} ({namespace})"  # the text lines say what happened, not the intent's id
    words = "promote --full" if verb == "promote-full" else verb  # as the user typed it
    result: dict[str, Any] = {
        "namespace": namespace,
        "name": args.name,
        "verb": verb,
        "id": recorded.id,
        "at": format_time(recorded.intent.at),
        "user": recorded.intent.user,
        "consumed": None,
        "phase": None,
    }
    text = args.output == "text"
    if text:
        # flushed: with --wait the line must reach a pipe now, not when the wait ends
        print(
            f"{said}: {words} recorded; the controller applies it at its next reconcile",
            flush=True,
        )
    code = 0
    if args.wait:
        followed = follow(
            kube,
            namespace,
            args.name,
            runtime,
            done=lambda obj: intents.consumed(obj, recorded.id),
            timeout_s=timeout,
            on_update=lambda _obj, _changed: None,
        )
        snap = snapshot(followed.obj)
        result["consumed"] = not followed.timed_out
        result["phase"] = snap.phase or None
        if followed.timed_out:
            assert timeout is not None
            code = EXIT_IN_PROGRESS  # exit 3: a timeout, as for status -w
            print(
                f"error: the controller did not act on {verb} for {label} within "
                f"{human(timeout)}; is it running? (the intent stays recorded: it will act later)",
                file=sys.stderr,
            )
        elif text:
            detail = f": {snap.events[-1].message}" if snap.events else ""
            print(f"{said}: {words} done, now {snap.phase or 'unknown'}{detail}")
    if not text:
        output.emit(result, args.output, sys.stdout)
    return code
