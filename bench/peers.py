"""The contest: Flagger, Argo Rollouts and ours on one node, gateway, Prometheus and traffic.

Owns two sections of ``docs/benchmarks-derivation.md``: outcomes kept with ``"design":
"contest"`` render into "## The contest with the real peers" (:func:`contest_section`), those
of the matrix before it (kept without a ``design``) into "## Side by side with the real peers"
(:func:`section`), as they always did; ``--merge`` refuses to mix the two.

It runs ``tests/routing/test_real_peers.py`` under its ``peers`` marker (the loopback control
plane with an audit log, the real node, Traefik v3.6.12, the Prometheus Operator's Prometheus,
KServe v0.20.0 for ours, Flagger v1.44.0 and Argo Rollouts v1.10.2 built by
``scripts/build-peers.sh``, and ``canaryctl controller`` under each judge) on the candidates of
:func:`harness.peers.contest.contest_candidates`, each its registered number of runs (``--runs
registered``, the default) or ``--runs N``, with ``CONTROLPLANE_TRAFFIC_REPORT`` set so that the
test writes each outcome. The contest's table has a row per tool and candidate, both in their
registered order: the verdicts, the share of them that is the verdict written down before the
run with its 95 % Wilson interval, the seconds to the verdict, the requests the candidate served
in breach of the SLO before it, the requests that failed, and the Prometheus queries and API
writes per minute meanwhile; under it, ours (sequential) against each peer as docs/peers.md
scores it (:func:`contest_verdict_lines`).

Run ``python bench/peers.py`` (``scripts/build-peers.sh`` and ``make kube-tools`` first: hours);
``--short`` runs what ``pytest -m peers`` runs (the control, ``errors 5x`` and the crash loop,
once, their verdicts asserted); ``--tools`` and ``--candidates`` run fewer; ``--json FILE``
keeps the outcomes, ``--report FILE`` renders kept ones without running, ``--merge FILE``
(repeatable) adds the outcomes another run kept (at the same pace and design) to the table,
``--no-write`` prints only.
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
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from harness.peers.contest import CANDIDATES as CONTEST_CANDIDATES
from harness.peers.contest import TOOLS as CONTEST_TOOLS
from harness.peers.contest import runs_of, wilson

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
SECTION_CONTEST = "## The contest with the real peers"
CONTEST = "contest"
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


def run(folder: Path, candidates: str, runs: str, pace: float, tools: str | None = None) -> int:
    """The test once, its outcomes written into ``folder``."""
    env = {
        **os.environ,
        **({"CONTROLPLANE_PEERS_TOOLS": tools} if tools else {}),
        REPORT_ENV: str(folder),
        "CONTROLPLANE_PEERS_CANDIDATES": candidates,
        "CONTROLPLANE_PEERS_RUNS": runs,
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
        if "design" in data:
            got["design"] = data["design"]
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
        verdicts: dict[str, int] = defaultdict(int)
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


def _tool(outcome: dict[str, Any]) -> str:
    return str(outcome["tool"])


def failure_lines(
    outcomes: list[dict[str, Any]], label: Callable[[dict[str, Any]], str] = _tool
) -> list[str]:
    """Where the failed requests were, per tool (as ``label`` names it) and candidate with any
    (pure): each status with its count, the variant that answered, and when each was sent (up
    to five; more as their span) against the verdict's time.
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
        lines.append(f"- {label(o)}, {o['candidate']} (verdict at {o['seconds']:g} s): {said}")
    return lines


def _page(
    data: dict[str, Any],
    cmd: str,
    about: str,
    table: list[str],
    after: list[str],
    label: Callable[[dict[str, Any]], str] = _tool,
) -> str:
    """A section: when and how it was measured, ``about`` the run (the load average appended),
    the ``table``, the lines ``after`` it, and the failed requests by run (each run's tool as
    ``label`` names it)."""
    lines = [
        f"Measured {today()} on {machine_summary(())}; `{cmd}`.",
        "",
        about + load_line(data.get("load") or []),
        "",
        *table,
        *after,
    ]
    failed = failure_lines(data["outcomes"], label)
    if failed:
        lines += ["", "Failed requests, by run (sent, seconds after the candidate's arrival):", ""]
        lines += failed
    return "\n".join(lines)


def section(data: dict[str, Any], cmd: str) -> str:
    """The matrix's table (pure but for the date)."""
    pace = data["pace"]
    about = (
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
        "ModelCanary applied) to the verdict. "
    )
    table = [
        "| tool | candidate | runs | verdicts | wrong | requests the candidate served "
        "| seconds | failed requests | Prometheus queries / min | API writes / min |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows(data["outcomes"]),
    ]
    return _page(data, cmd, about, table, [])


def tool_label(outcome: dict[str, Any]) -> str:
    """``flagger``, ``argo-rollouts``, or ``ours:<judge>``: a tool of
    :data:`harness.peers.contest.TOOLS`."""
    return f"ours:{outcome['judge']}" if outcome["tool"] == "ours" else str(outcome["tool"])


def _spread(values: list[float]) -> str:
    """The median, and the range when the values differ: ``88 (71-120)``."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    middle = f"{median(values):g}"
    return middle if low == high else f"{middle} ({low:g}-{high:g})"


def right_share(runs: list[dict[str, Any]]) -> str:
    """How many runs gave the verdict written down before them, of how many, with the share's
    95 % Wilson interval; ``-`` where none was written down (the edge: reported, not scored).
    ``halted`` (Rollouts' Rollout Degraded, not aborted) is neither verdict: wrong for both."""
    expected = runs[0]["expected"]
    if expected is None:
        return "-"
    right = sum(1 for o in runs if o["verdict"] == expected)
    low, high = wilson(right, len(runs))
    return f"{right} of {len(runs)} ({100 * low:.0f}-{100 * high:.0f} %)"


def _groups(outcomes: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The outcomes per tool and candidate, in the registered order of both."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for o in outcomes:
        found[(tool_label(o), o["candidate"])].append(o)
    order = {
        (t, c): (i, j)
        for i, t in enumerate(CONTEST_TOOLS)
        for j, c in enumerate(CONTEST_CANDIDATES)
    }
    return dict(sorted(found.items(), key=lambda kv: order.get(kv[0], (99, 99))))


def contest_rows(outcomes: list[dict[str, Any]]) -> list[str]:
    """One row per tool and candidate (pure)."""
    lines = []
    for (tool, name), runs in _groups(outcomes).items():
        verdicts: dict[str, int] = defaultdict(int)
        for o in runs:
            verdicts[o["verdict"]] += 1
        said = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        lines.append(
            f"| {tool} | {name} | {runs[0]['expected'] or 'either'} "
            f"| {len(runs)} of {runs_of(name)} | {said} | {right_share(runs)} "
            f"| {_spread([o['seconds'] for o in runs])} "
            f"| {_spread([o['breaching'] for o in runs])} "
            f"| {sum(o['failed'] for o in runs)} of {sum(o['requests'] for o in runs)} "
            f"| {_median([o['queries_per_minute'] for o in runs])} "
            f"| {_median([o['writes_per_minute'] for o in runs])} |"
        )
    return lines


PEERS = {"flagger": "Flagger", "argo-rollouts": "Argo Rollouts"}
"""The peers ours (sequential) is scored against, by the names the comparison gives them."""
OURS_SEQUENTIAL = "ours:sequential"


def _rolled_back(runs: list[dict[str, Any]]) -> int:
    return sum(1 for o in runs if o["verdict"] == "rolled back")


def _breaching(runs: list[dict[str, Any]]) -> float:
    return float(median([o["breaching"] for o in runs]))


def _than(peers: list[str], worse: list[str]) -> str:
    """``more than Flagger``; ``not more than either`` (or the one peer's name)."""
    if worse:
        return f"more than {' and '.join(worse)}"
    return "not more than either" if len(peers) > 1 else f"not more than {peers[0]}"


def contest_verdict_lines(outcomes: list[dict[str, Any]]) -> list[str]:
    """Ours (sequential) against each peer with runs on the same row, as docs/peers.md scores
    it (pure): on every clearly-bad row (expected ``rolled back``), the median requests served
    in breach of the SLO before the verdict (better: no more than either peer's); on the A/A
    control, the runs rolled back (better: in no more of its runs than theirs, as shares when
    the numbers of runs differ). Only rows where ours (sequential) and a peer have runs."""
    groups = _groups(outcomes)
    lines = []
    for name in CONTEST_CANDIDATES:
        ours = groups.get((OURS_SEQUENTIAL, name))
        if not ours or (name != "control" and ours[0]["expected"] != "rolled back"):
            continue
        peers = [(PEERS[t], groups[(t, name)]) for t in PEERS if (t, name) in groups]
        if not peers:
            continue
        if name == "control":
            mine = _rolled_back(ours)
            said = [f"{peer} {_rolled_back(runs)} of {len(runs)}" for peer, runs in peers]
            worse = [p for p, runs in peers if mine / len(ours) > _rolled_back(runs) / len(runs)]
            what = f"rolled back {mine} of {len(ours)} runs"
        else:
            mine_b = _breaching(ours)
            said = [f"{peer} {_breaching(runs):g}" for peer, runs in peers]
            worse = [p for p, runs in peers if mine_b > _breaching(runs)]
            what = f"served a median of {mine_b:g} breaching requests"
        than = _than([p for p, _ in peers], worse)
        lines.append(f"- {name}: ours (sequential) {what}, {', '.join(said)}: {than}.")
    return lines


def contest_section(data: dict[str, Any], cmd: str) -> str:
    """The contest's table, its comparison and its failed requests (pure but for the date)."""
    pace = data["pace"]
    about = (
        f'Pins: {", ".join(PINS)}. Every tool is given the same SLO (docs/peers.md, "The '
        "contest, registered before it runs\": P95 at most 1.2 times the stable's and under "
        "2.5 s, errors at most 1 point above the stable's 1 %), in its own analysis as its "
        f"documentation takes one; every interval divided by {pace:g}, none below 10 s. Load: "
        "OpenAI completions at 6 requests per second through the gateway from before the "
        "candidate arrives until 10 s after the verdict. Engine: the simulated vLLM "
        "(`controlplane/local`, serving vLLM's metric contract) in every pod, not the "
        "real vLLM. `expected`: the verdict written down "
        "before any run (`either`: at the SLO's edge, not scored); `runs`: of those registered; "
        "`right`: runs with the expected verdict, with the 95 % Wilson interval of that share "
        "(`halted`, Rollouts' Rollout Degraded and not aborted, is neither verdict); `seconds` "
        "from the candidate's arrival to the verdict and `breaching` (requests the candidate "
        "served in breach of the SLO before the verdict) as median (range). "
    )
    table = [
        "| tool | candidate | expected | runs | verdicts | right | seconds | breaching "
        "| failed requests | Prometheus queries / min | API writes / min |",
        "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|",
        *contest_rows(data["outcomes"]),
    ]
    compared = contest_verdict_lines(data["outcomes"])
    after = [
        "",
        "Ours (sequential) against each peer where both have runs, as docs/peers.md scores it "
        "(better on a clearly-bad row when it serves no more breaching requests than either "
        "peer, on the control when it rolls back in no more of its runs):",
        "",
    ]
    return _page(data, cmd, about, table, after + compared if compared else [], tool_label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        default="registered",
        help="runs per candidate, or 'registered': each its registered number (the default)",
    )
    parser.add_argument("--pace", type=float, default=6.0, help="divide every interval by this")
    parser.add_argument(
        "--short", action="store_true", help="the control, errors 5x and the crash loop, once"
    )
    parser.add_argument(
        "--tools", default=None, help=f"comma-separated of {', '.join(CONTEST_TOOLS)} (all)"
    )
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
        candidates, runs = ("", "1") if args.short else (args.candidates or "all", args.runs)
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
        if kept.get("design") != data.get("design"):
            parser.error(f"{extra}: another design than {args.report or 'this run'}'s")
        data = {
            **data,
            "outcomes": data["outcomes"] + kept["outcomes"],
            "load": data.get("load", []) + kept.get("load", []),
        }
        cmds.append(kept.get("cmd") or f"python bench/peers.py --report {extra.name}")
    said = "`, then `".join(cmds)
    if data.get("design") == CONTEST:
        publish(args, SECTION_CONTEST, contest_section(data, said))
    else:
        publish(args, SECTION, section(data, said))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
