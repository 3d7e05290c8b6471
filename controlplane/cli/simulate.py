"""``canaryctl simulate FILE --prometheus URL --start T [--end T] [--pairs FILE] [-o json]
[--plot FILE.png]``.

Replays a canary against metric history in Prometheus, as the controller would have run it
(:mod:`controlplane.simulation`), a quality canary's judge against the pairs recorded from its
pairer (``--pairs``), and prints a timeline or JSON; a rollback exits 5. See docs/analysis.md,
"Replay (``canaryctl simulate``)".
"""

from __future__ import annotations

import argparse
import json
import time

from controlplane.analysis.recorded_pairs import load_pairs
from controlplane.cli.exits import replay_exit
from controlplane.cli.timeparse import parse_time
from controlplane.errors import UsageError
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.simulation import SimulationResult, prefetched, simulate
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "simulate",
        help="replay a canary against Prometheus history",
        description="Replay a canary against metric history in Prometheus, evaluating every "
        "analysis.interval from --start until an outcome or --end. Nothing is deployed.",
    )
    parser.add_argument("file", metavar="FILE", help="the canary.yml")
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus base URL (default: spec.analysis.prometheus)",
    )
    parser.add_argument(
        "--start", required=True, metavar="T", help="RFC 3339, unix seconds, or now-DURATION"
    )
    parser.add_argument("--end", metavar="T", default="now", help="default: now")
    parser.add_argument("--name", help="which canary, when FILE holds several documents")
    parser.add_argument(
        "--pairs",
        metavar="FILE",
        help="the quality judge's pairs, recorded from the pairer (its GET /pairs pages, one "
        "per line): replayed for spec.quality",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument("--plot", metavar="FILE.png", help="draw weight and checked metrics")
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="per-request Prometheus timeout"
    )


def pick(canaries: list[ModelCanary], name: str | None, file: str) -> ModelCanary:
    """The canary named ``name`` in ``file`` (or its only one)."""
    if name is not None:
        for canary in canaries:
            if canary.metadata.name == name:
                return canary
        names = ", ".join(c.metadata.name for c in canaries)
        raise UsageError(f"{file} has no canary named {name!r} (it has: {names})")
    if len(canaries) != 1:
        names = ", ".join(c.metadata.name for c in canaries)
        raise UsageError(f"{file} holds {len(canaries)} canaries ({names}): choose one with --name")
    return canaries[0]


def run(args: argparse.Namespace) -> int:
    canary = pick(validated_file(args.file), args.name, args.file)
    url = args.prometheus or canary.spec.analysis.prometheus
    if not url:
        raise UsageError("no Prometheus: pass --prometheus URL or set spec.analysis.prometheus")
    now = time.time()
    start, end = parse_time(args.start, now=now), parse_time(args.end, now=now)
    if end < start:
        raise UsageError("--end is before --start")
    pairs = load_pairs(args.pairs) if args.pairs else None
    if pairs is not None and canary.spec.quality is None:
        raise UsageError(f"--pairs: {canary.metadata.name} has no spec.quality to judge them")
    source = PrometheusProvider(from_url(url, timeout_s=args.timeout))
    provider = prefetched(canary, source, start, end)
    result = simulate(canary, provider, start, end, pairs=pairs)
    if args.output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        from controlplane.cli.timeline import print_timeline

        print_timeline(result)
    if args.plot:
        from controlplane.cli.plot import plot_result

        plot_result(result, source, args.plot)
    return replay_exit(result.outcome)


__all__ = ["SimulationResult", "add_parser", "pick", "run"]
