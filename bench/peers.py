"""Side by side: Flagger, Argo Rollouts and ours on one node, gateway, Prometheus and traffic.

Owns the "## Side by side with the real peers" section of ``docs/benchmarks-derivation.md``. It
runs ``tests/routing/test_real_peers.py`` under its ``peers`` marker (the loopback control plane
with an audit log, the real node, Traefik v3.6.12, the Prometheus Operator's Prometheus, KServe
v0.20.0 for ours, Flagger v1.44.0 and Argo Rollouts v1.10.2 built by ``scripts/build-peers.sh``,
and ``canaryctl controller``), every candidate of
``harness.peers.render.candidates`` ``--runs`` times, with ``CONTROLPLANE_TRAFFIC_REPORT`` set so
that the test writes each outcome, and turns them into one table: per tool and candidate, the
verdicts, the requests the candidate served until the verdict, the seconds to it, the requests
that failed, and the Prometheus queries and API writes per minute meanwhile.

Run ``python bench/peers.py`` (``scripts/build-peers.sh`` and ``make kube-tools`` first; about
5 minutes a candidate run at the default pace); ``--short`` runs what ``pytest -m peers`` runs
(one healthy and one bad candidate, once); ``--tools`` and ``--candidates`` run fewer;
``--json FILE`` keeps the outcomes, ``--report FILE`` renders kept ones without running,
``--merge FILE`` (repeatable) adds the outcomes another run kept (at the same pace) to the
table, ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Any

try:
    from bench.common import add_record_args, machine_summary, publish, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        add_record_args,
        machine_summary,
        publish,
        today,
    )

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Side by side with the real peers"
TEST = "tests/routing/test_real_peers.py"
REPORT_ENV = "CONTROLPLANE_TRAFFIC_REPORT"
PINS = (
    "ours: `canaryctl controller` of this commit on KServe v0.20.0 (Standard mode)",
    "Flagger v1.44.0 (`-mesh-provider=gatewayapi:v1`)",
    "Argo Rollouts v1.10.2 (its built-in Traefik router)",
    "Traefik v3.6.12",
    "Prometheus v3.5.0",
    "Kubernetes v1.34.10",
)


def run(folder: Path, candidates: str, runs: int, pace: float, tools: str | None = None) -> int:
    """The test once, its outcomes written into ``folder``."""
    env = {
        **os.environ,
        **({"CONTROLPLANE_PEERS_TOOLS": tools} if tools else {}),
        REPORT_ENV: str(folder),
        "CONTROLPLANE_PEERS_CANDIDATES": candidates,
        "CONTROLPLANE_PEERS_RUNS": str(runs),
        "CONTROLPLANE_PEERS_PACE": str(pace),
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    return subprocess.call([*cmd, "-m", "peers", TEST], cwd=ROOT, env=env)


def sampled_load(stop: threading.Event, into: list[float], every_s: float = 30.0) -> None:
    """The machine's 1-minute load average every ``every_s`` until ``stop`` (the run's
    neighbours included: this machine is shared)."""
    while not stop.wait(every_s):
        into.append(round(os.getloadavg()[0], 2))


def load_line(samples: list[float]) -> str:
    """What the samples of :func:`sampled_load` say, for the table's note (pure)."""
    if not samples:
        return "Load average not sampled."
    return (
        f"1-minute load average during the run (2 cores, shared): median {median(samples):g}, "
        f"{min(samples):g} to {max(samples):g} over {len(samples)} samples 30 s apart."
    )


def load(folder: Path) -> dict[str, Any]:
    """Every tool's outcomes in ``folder``, with the pace they ran at."""
    got: dict[str, Any] = {"pace": None, "outcomes": []}
    for path in sorted(folder.glob("peers-*.json")):
        data = json.loads(path.read_text())
        got["pace"] = data["pace"]
        got["outcomes"] += data["outcomes"]
    return got


def _median(values: list[float]) -> str:
    return f"{median(values):g}" if values else "-"


def rows(outcomes: list[dict[str, Any]]) -> list[str]:
    """One table row per tool and candidate, in the order first met (pure)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        groups[(outcome["tool"], outcome["candidate"])].append(outcome)
    lines = []
    for (tool, name), runs in groups.items():
        verdicts = defaultdict(int)
        for o in runs:
            verdicts[o["verdict"]] += 1
        said = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        # a healthy candidate not promoted, or a bad one promoted (a bad one halted short of
        # promotion, as Rollouts halts one past its progress deadline, is not promoted)
        wrong = sum(1 for o in runs if (o["verdict"] == "promoted") == o["bad"])
        lines.append(
            f"| {tool} | {name} | {len(runs)} | {said} | {wrong} "
            f"| {_median([o['candidate_requests'] for o in runs])} "
            f"| {_median([o['seconds'] for o in runs])} "
            f"| {sum(o['failed'] for o in runs)} of {sum(o['requests'] for o in runs)} "
            f"| {_median([o['queries_per_minute'] for o in runs])} "
            f"| {_median([o['writes_per_minute'] for o in runs])} |"
        )
    return lines


def _when(at: list[float], listed: int = 5) -> str:
    """``at 80.3, 81 s``; a longer series (errors injected all along) as its span."""
    if len(at) <= listed:
        return f"at {', '.join(f'{t:g}' for t in at)} s"
    return f"between {at[0]:g} and {at[-1]:g} s"


def failure_lines(outcomes: list[dict[str, Any]]) -> list[str]:
    """Where the failed requests were, per tool and candidate with any (pure): each status with
    its count, the variant that answered, and when each was sent (up to five; more as their
    span) against the verdict's time.
    Outcomes kept before failures were recorded add nothing."""
    lines = []
    for o in outcomes:
        failures = o.get("failures") or []
        if not failures:
            continue
        kinds: dict[tuple[str, str], list[float]] = defaultdict(list)
        for f in failures:
            kinds[(str(f["code"]), f.get("variant") or "no variant")].append(float(f["at_s"]))
        said = "; ".join(
            f"{code} from {variant} x{len(at)} {_when(sorted(at))}"
            for (code, variant), at in sorted(kinds.items())
        )
        lines.append(f"- {o['tool']}, {o['candidate']} (verdict at {o['seconds']:g} s): {said}")
    return lines


def section(data: dict[str, Any], cmd: str) -> str:
    pace = data["pace"]
    lines = [
        f"Measured {today()} on {machine_summary(())}; `{cmd}`.",
        "",
        f"Pins: {', '.join(PINS)}; each tool configured as docs/peers.md says (Flagger: its "
        "Gateway API tutorial's Canary; Rollouts: analysis.md's background analysis; ours: the "
        "spec's and the controller's defaults, Flagger's schedule and bounds). Every "
        "interval divided by "
        f"{pace:g} (the tutorial's 1m analysis interval ran every {60 / pace:g} s), the same "
        "factor for every tool, and none below 10 s (two of Prometheus's 5 s scrapes). Load: "
        "OpenAI completions at 6 requests per second through the "
        "gateway from before the candidate arrives until 10 s after the verdict. `wrong`: a "
        "healthy candidate not promoted or a bad one promoted (`halted`: Rollouts' Rollout "
        "Degraded past its progress deadline, not aborted). Medians over the runs; `seconds` "
        "from the candidate's arrival (the Deployment's or the Rollout's new pod template, the "
        "ModelCanary applied) to the verdict. " + load_line(data.get("load") or []),
        "",
        "| tool | candidate | runs | verdicts | wrong | requests the candidate served "
        "| seconds | failed requests | Prometheus queries / min | API writes / min |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows(data["outcomes"]),
    ]
    failed = failure_lines(data["outcomes"])
    if failed:
        lines += ["", "Failed requests, by run (sent, seconds after the candidate's arrival):", ""]
        lines += failed
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per candidate (default 3)")
    parser.add_argument("--pace", type=float, default=3.0, help="divide every interval by this")
    parser.add_argument("--short", action="store_true", help="one healthy, one bad, once")
    parser.add_argument("--tools", default=None, help="comma-separated (default: all three)")
    parser.add_argument(
        "--candidates", default=None, help="comma-separated candidate names (default: all)"
    )
    parser.add_argument(
        "--merge", type=Path, action="append", default=[], metavar="FILE", help="add kept runs"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="keep each tool's outcomes there as they come"
    )
    add_record_args(parser)
    args = parser.parse_args(argv)
    scope = "--short" if args.short else f"--runs {args.runs}"
    if args.tools and not args.short:
        scope += f" --tools {args.tools}"
    if args.candidates and not args.short:
        scope += f" --candidates '{args.candidates}'"
    cmd = f"python bench/peers.py {scope} --pace {args.pace:g}"
    if args.report is not None:
        data = json.loads(args.report.read_text())
    else:
        candidates, runs = ("", 1) if args.short else (args.candidates or "all", args.runs)
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sampled_load, args=(stop, samples), daemon=True)
        sampler.start()
        with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
            folder = args.dir or Path(tmp)
            code = run(folder, candidates, runs, args.pace, args.tools)
            data = load(folder)
        stop.set()
        data["load"] = samples
        if code != 0:
            print(f"{TEST} failed (exit {code}): nothing written", file=sys.stderr)
            if args.json is not None and data["outcomes"]:  # what did finish, for the record
                data["cmd"] = cmd
                data["exit"] = code
                args.json.write_text(json.dumps(data, indent=1))
            return code
    if args.report is not None:  # the run's own command, kept with its figures
        cmd = data.get("cmd") or f"python bench/peers.py --report {args.report.name}"
    else:
        data["cmd"] = cmd
        if args.json is not None:
            args.json.write_text(json.dumps(data, indent=1))
    cmds = [cmd]
    for extra in args.merge:
        kept = json.loads(extra.read_text())
        if kept["pace"] != data["pace"]:
            parser.error(f"{extra}: pace {kept['pace']}, not {data['pace']}")
        data = {
            **data,
            "outcomes": data["outcomes"] + kept["outcomes"],
            "load": data.get("load", []) + kept.get("load", []),
        }
        cmds.append(kept.get("cmd") or f"python bench/peers.py --report {extra.name}")
    publish(args, SECTION, section(data, "`, then `".join(cmds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
