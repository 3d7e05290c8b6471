"""``kubectl canary list [-n NS | -A] [-o json|yaml]``: the ModelCanaries of a namespace.

Owns the table (``NAME PHASE STEP WEIGHT STABLE CANDIDATE AGE``, with ``NAMESPACE`` first under
``-A``) and its machine-readable form: ``-o json|yaml`` prints a ``v1`` ``List`` of the objects as
the API server holds them, as ``kubectl get -o json`` does. An empty namespace is not an error
(exit 0, a note on stderr). Called by :mod:`controlplane.cli.main`.
"""

from __future__ import annotations

import argparse
import sys

from controlplane.cli import cluster, output
from controlplane.cli.table import columns
from controlplane.operations import list_canaries
from controlplane.view.canary import human, snapshot


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "list",
        help="list ModelCanaries with phase, step and weight",
        description="List the ModelCanaries of a namespace (-A: of every namespace).",
    )
    cluster.add_cluster_args(parser, all_namespaces=True)
    output.add_output_arg(parser)


def run(args: argparse.Namespace) -> int:
    namespace = cluster.list_namespace(args)
    kube = cluster.connect(args)
    items = list_canaries(kube, namespace)
    if args.output != "text":
        shown = [output.shown(obj) for obj in items]
        output.emit({"apiVersion": "v1", "kind": "List", "items": shown}, args.output, sys.stdout)
        return 0
    if not items:
        where = "any namespace" if namespace is None else f"namespace {namespace!r}"
        print(f"No modelcanaries found in {where}.", file=sys.stderr)
        return 0
    now = cluster.runtime_of(args).clock()
    header = ["NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANDIDATE", "AGE"]
    if namespace is None:
        header.insert(0, "NAMESPACE")
    rows = []
    for obj in items:
        snap = snapshot(obj)
        age = human(now - snap.created_at) if snap.created_at is not None else "-"
        row = [
            snap.name,
            snap.phase or "unknown",
            snap.stage_label(),
            f"{snap.weight}%",
            snap.stable,
            snap.candidate,
            age,
        ]
        if namespace is None:
            row.insert(0, snap.namespace)
        rows.append(row)
    sys.stdout.write(columns(header, rows))
    return 0
