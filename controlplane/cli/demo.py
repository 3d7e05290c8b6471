"""``canaryctl demo``: the README's first command — a promotion and a rollback, no cluster needed.

Runs :mod:`controlplane.local.demo`: the four-week canary replayed by the same state machine and
analysis as the controller against synthetic vLLM history in a real, throwaway Prometheus. Prints
each story's timeline and outcome; ``--plot-dir`` also draws them. Called by
:mod:`controlplane.cli.main`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from controlplane.cli.timeline import print_timeline


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the packaged demo (no cluster needed)",
        description="Replay the four-week canary (canary/four-week.yml) against synthetic vLLM "
        "metrics in a throwaway real Prometheus: one promotion, one rollback with its reason.",
    )
    parser.add_argument("--plot-dir", metavar="DIR", help="write one PNG per story into DIR")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from controlplane.local.demo import demo_session

    console = Console(stderr=args.output == "json")

    def say(message: str) -> None:
        if args.output == "text":
            console.print(message)

    say("[bold]canaryctl demo[/] — metric history is [yellow]simulated[/]; Prometheus is real.")
    results: dict[str, object] = {}
    with demo_session(progress=lambda m: say(f"[dim]{m}[/]")) as replayed:
        for item in replayed:
            if args.output == "text":
                console.rule(f"[bold]{item.story.key}[/]: {item.story.title}")
                print_timeline(item.result, console)
            results[item.story.key] = item.result.to_json()
            if args.plot_dir:
                from controlplane.cli.plot import plot_result

                out = Path(args.plot_dir)
                out.mkdir(parents=True, exist_ok=True)
                path = plot_result(item.result, item.source, out / f"{item.story.key}.png")
                say(f"plot: {path}")
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        say("Replay your own history: canaryctl simulate FILE --prometheus URL --start now-28d")
    return 0
