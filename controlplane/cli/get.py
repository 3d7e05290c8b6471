"""``kubectl canary get NAME [-w] [--timeout D] [-o json|yaml]``: one ModelCanary, live.

Owns the ``get`` verb: the view of :mod:`controlplane.cli.live` with what the cluster holds
beside the status (:func:`controlplane.operations.read_owned`), printed once or, with ``-w``,
redrawn on every change until Ctrl-C or ``--timeout``; ``-o json|yaml`` prints the object (one
document per change with ``-w``). Called by :mod:`controlplane.cli.main`; see docs/cli.md.
"""

from __future__ import annotations

import argparse
import sys

from controlplane.cli import cluster, output
from controlplane.cli.follow import follow
from controlplane.cli.live import FrameWriter, render
from controlplane.kube.client import Obj
from controlplane.operations import get_canary, read_owned
from controlplane.profiles.catalog import load_catalog
from controlplane.profiles.measured import measured_for
from controlplane.view.canary import snapshot
from controlplane.view.owned import Owned

OWNED_REFRESH_S = 5.0
"""How often ``get -w`` reads again the objects the canary owns, their health, the route's weight
and the Events while the canary itself does not change (at once when it does)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "get",
        help="show one ModelCanary (-w: live view)",
        description="Show a ModelCanary: phase, step, the weight set and the weight the route "
        "holds, time in step and left, the step plan, the objects it owns with their health, "
        "every check's latest candidate and stable values against its threshold and its recent "
        "results, the last rollout events and Kubernetes Events (warnings included).",
    )
    parser.add_argument("name", metavar="NAME", help="the ModelCanary")
    parser.add_argument(
        "-w", "--watch", action="store_true", help="keep the view up to date until Ctrl-C"
    )
    parser.add_argument(
        "--timeout", metavar="DURATION", help="with -w: stop watching after DURATION (e.g. 10m)"
    )
    parser.add_argument(
        "--events", type=int, default=5, metavar="N", help="how many recent events to show"
    )
    parser.add_argument(
        "--profiles",
        metavar="PATH",
        help="GPU catalogue whose measured/ entries give the expected change (default: packaged)",
    )
    cluster.add_cluster_args(parser)
    output.add_output_arg(parser)


def run(args: argparse.Namespace) -> int:
    timeout = cluster.parse_timeout(args.timeout)
    if args.events < 0:
        from controlplane.errors import UsageError

        raise UsageError("--events must be 0 or more")
    measured = measured_for(load_catalog(args.profiles)) if args.output == "text" else ()
    namespace = cluster.namespace_of(args)
    kube = cluster.connect(args)
    runtime = cluster.runtime_of(args)
    if not args.watch and timeout is None:
        obj = get_canary(kube, namespace, args.name)
        if args.output != "text":
            output.emit(output.shown(obj), args.output, sys.stdout)
        else:
            owned = read_owned(kube, obj)
            view = render(snapshot(obj, measured), runtime.clock(), events=args.events, owned=owned)
            runtime.terminal().print(view)
        return 0

    if args.output != "text":

        def emit(obj: Obj, changed: bool) -> None:
            if changed:
                output.emit(output.shown(obj), args.output, sys.stdout, stream=True)

        follow(kube, namespace, args.name, runtime, done=_never, timeout_s=timeout, on_update=emit)
        return 0

    with FrameWriter(runtime.terminal()) as display:
        seen: list[tuple[float, Owned]] = []  # what the cluster held, and when it was read

        def draw(obj: Obj, changed: bool) -> None:
            now = runtime.clock()
            if changed or not seen or now - seen[-1][0] >= OWNED_REFRESH_S:
                seen[:] = [(now, read_owned(kube, obj))]
            view = render(snapshot(obj, measured), now, events=args.events, owned=seen[-1][1])
            display.show(view, changed=changed)

        follow(kube, namespace, args.name, runtime, done=_never, timeout_s=timeout, on_update=draw)
    return 0


def _never(_obj: Obj) -> bool:
    return False
