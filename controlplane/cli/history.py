"""``kubectl canary history NAME [--limit N] [-o json|yaml]``: the rollout's events as a table.

Owns the ``history`` verb: ``status.history`` (the rollout's events, oldest first, bounded by
the controller) as ``TIME EVENT STEP WEIGHT MESSAGE`` with RFC 3339 UTC times, or with
``-o json|yaml`` a list of ``{time, type, step, weight, message}`` (the contract's ``simulate``
event shape). Called by :mod:`controlplane.cli.main`.
"""

from __future__ import annotations

import argparse
import sys

from controlplane.cli import cluster, output
from controlplane.cli.table import columns
from controlplane.errors import UsageError
from controlplane.operations import get_canary
from controlplane.view.canary import snapshot


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "history",
        help="a canary's rollout events as a table",
        description="List a canary's rollout events (StepStarted, Advanced, Breached, ...), "
        "oldest first.",
    )
    parser.add_argument("name", metavar="NAME", help="the ModelCanary")
    parser.add_argument("--limit", type=int, metavar="N", help="only the last N events")
    cluster.add_cluster_args(parser)
    output.add_output_arg(parser)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    namespace = cluster.namespace_of(args)
    kube = cluster.connect(args)
    events = snapshot(get_canary(kube, namespace, args.name)).events
    if args.limit is not None:
        events = events[-args.limit :]
    rows = [event.to_json() for event in events]
    if args.output != "text":
        output.emit(rows, args.output, sys.stdout)
        return 0
    if not rows:
        print(f"modelcanary {namespace}/{args.name} has no events yet.", file=sys.stderr)
        return 0
    table = [
        [
            str(row["time"] or "-"),
            str(row["type"]),
            str(row["step"]),
            f"{row['weight']}%",
            " ".join(str(row["message"]).split()),
        ]
        for row in rows
    ]
    sys.stdout.write(columns(["TIME", "EVENT", "STEP", "WEIGHT", "MESSAGE"], table))
    return 0
