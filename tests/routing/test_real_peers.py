"""The contest: the real Flagger and Argo Rollouts, and ours under both judges, on one node,
gateway, Prometheus and traffic, each given the same SLO (docs/peers.md, "The contest,
registered before it runs").

Under the ``peers`` marker, which ``make test`` leaves out (``pyproject.toml`` ``addopts``: the
cold CI's time goes to other builds) and ``bench/peers.py`` runs (``make bench``): the loopback
control plane with an audit log of every write, the real node, Traefik v3.6.12 with the
contest's finer latency buckets and Prometheus (:func:`support.peers.peers_stack`, Traefik's
CRD provider on for Rollouts' router), and Flagger v1.44.0 and Argo Rollouts v1.10.2 as host
processes (:mod:`harness.peers.run`, built by ``scripts/build-peers.sh``), and ours:
``canaryctl controller`` adopting a KServe v0.20.0 InferenceService of the engine
(:func:`support.peers.ours_run`; KServe runs in the same stack for it). Each run is one
candidate of :func:`harness.peers.contest.contest_candidates` under load through the gateway,
measured by :mod:`support.peers`.

By default the short version: the A/A control, ``errors 5x`` and the crash loop, once per tool,
so the harness cannot rot; it asserts the verdicts that must hold for every tool (the control
promoted, the other two rolled back) besides what holds whatever the verdicts: a verdict came,
the candidate took traffic through the gateway, and the tool's writes were counted.
``CONTROLPLANE_PEERS_CANDIDATES`` (comma-separated names, or ``all``) and
``CONTROLPLANE_PEERS_RUNS`` (runs per candidate, or ``registered``: the contest's own number
for each, :func:`harness.peers.contest.runs_of`) make it the benchmark, whose verdicts are what
is measured and not asserted; ``CONTROLPLANE_PEERS_PACE`` divides every interval (6 unless
told); ``CONTROLPLANE_PEERS_TOOLS`` picks the tools (comma-separated names of
:data:`harness.peers.contest.TOOLS`; all four unless told); with ``CONTROLPLANE_TRAFFIC_REPORT``
set to a folder each outcome is written there as JSON. The tools run quickest first (ours,
Flagger, then Rollouts, whose pauses take longest), so a run cut short has the most cells.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.peers import (
    OURS,
    Outcome,
    flagger_run,
    ours_controller,
    ours_run,
    peers_stack,
    rollouts_run,
)
from support.real_traffic import Stack
from support.realnode import MARKS
from support.traffic_summary import REPORT_ENV

from harness.peers.contest import CANDIDATES, TOOLS, Judge, runs_of
from harness.peers.render import Pace
from harness.peers.run import start_flagger, start_rollouts

# MARKS but its 900 s timeout: the whole benchmark is hours of canaries in one test
pytestmark = [
    *(m for m in MARKS if m.name != "timeout"),
    pytest.mark.peers,
    pytest.mark.timeout(4 * 3600),
]

SHORT = ("control", "errors 5x", "crash loop")
"""The short version's candidates: their verdicts must hold for every tool."""
RUNS_ENV, CANDIDATES_ENV, PACE_ENV, TOOLS_ENV = (
    "CONTROLPLANE_PEERS_RUNS",
    "CONTROLPLANE_PEERS_CANDIDATES",
    "CONTROLPLANE_PEERS_PACE",
    "CONTROLPLANE_PEERS_TOOLS",
)
PACE = Pace(float(os.environ.get(PACE_ENV, "6")))
CHOSEN_TOOLS = tuple(os.environ.get(TOOLS_ENV, ",".join(TOOLS)).split(","))
PREFIX = {
    "flagger": "flagger",
    "argo-rollouts": "argo",
    "ours:threshold": "thr",
    "ours:sequential": "seq",
}
"""Each tool's namespaces begin with this."""


def chosen() -> tuple[str, ...]:
    """The candidates this session runs."""
    named = os.environ.get(CANDIDATES_ENV, "")
    if named == "all":
        return CANDIDATES
    return tuple(n.strip() for n in named.split(",") if n.strip()) or SHORT


def short() -> bool:
    return not os.environ.get(CANDIDATES_ENV)


def runs(name: str) -> int:
    """Runs of the candidate ``name``: ``CONTROLPLANE_PEERS_RUNS`` (1 unless told), or the
    contest's registered number for it."""
    told = os.environ.get(RUNS_ENV, "1")
    return runs_of(name) if told == "registered" else int(told)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("peers-cluster")
    ours = any(t.startswith(f"{OURS}:") for t in CHOSEN_TOOLS)
    with peers_stack(folder, ours=ours) as running:
        if "flagger" in CHOSEN_TOOLS:
            start_flagger(running.cluster, running.prometheus)
        if "argo-rollouts" in CHOSEN_TOOLS:
            start_rollouts(running.cluster)
        yield running


def keep(tool: str, outcomes: list[Outcome]) -> None:
    folder = os.environ.get(REPORT_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        data = {
            "design": "contest",
            "pace": PACE.factor,
            "outcomes": [o.as_dict() for o in outcomes],
        }
        (Path(folder) / f"peers-{tool.replace(':', '-')}.json").write_text(
            json.dumps(data, indent=1)
        )


def namespace(tool: str, name: str, i: int) -> str:
    """``seq-errors5x-0``: the tool's prefix, the candidate's letters and digits, the run."""
    return f"{PREFIX[tool]}-{''.join(c for c in name if c.isalnum())}-{i}".lower()


def check(outcomes: list[Outcome]) -> None:
    """What holds whatever the verdicts: a verdict each time, traffic through the gateway all
    along, the candidate served some of it unless it never started, and the tool's own API
    writes counted; in the short version, also the verdicts every tool must give."""
    for got in outcomes:
        assert got.verdict != "undecided", got
        assert got.requests > 0, got
        if got.candidate != "crash loop":
            assert got.candidate_requests > 0, got
        assert got.writes_per_minute > 0, got
        if short():
            assert got.verdict == got.expected, got


def each(tool: str, run: Callable[[str, str], Outcome]) -> None:
    """``run(namespace, candidate)`` for every chosen candidate and run, each outcome kept as it
    comes; a run that raises is told at the end, after the others ran (a long benchmark keeps
    what it measured), and fails the test as a wrong outcome does (:func:`check`)."""
    outcomes, broken = [], []
    for name in chosen():
        for i in range(runs(name)):
            try:
                outcomes.append(run(namespace(tool, name, i), name))
            except Exception as exc:
                broken.append(f"{tool} {name} #{i}: {type(exc).__name__}: {exc}"[:2000])
            keep(tool, outcomes)
    check(outcomes)
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("judge", ["threshold", "sequential"])
def test_ours_decides_each_candidate_on_real_traffic(stack: Stack, judge: Judge) -> None:
    tool = f"{OURS}:{judge}"
    if tool not in CHOSEN_TOOLS:
        pytest.skip(f"{TOOLS_ENV} leaves {tool} out")
    every = tuple(namespace(tool, name, i) for name in chosen() for i in range(runs(name)))
    with ours_controller(stack, every, PACE):
        each(tool, lambda ns, name: ours_run(stack, ns, name, PACE, judge))


@pytest.mark.skipif("flagger" not in CHOSEN_TOOLS, reason=f"{TOOLS_ENV} leaves it out")
def test_flagger_decides_each_candidate_on_real_traffic(stack: Stack) -> None:
    each("flagger", lambda ns, name: flagger_run(stack, ns, name, PACE))


@pytest.mark.skipif("argo-rollouts" not in CHOSEN_TOOLS, reason=f"{TOOLS_ENV} leaves it out")
def test_argo_rollouts_decides_each_candidate_on_real_traffic(stack: Stack) -> None:
    each("argo-rollouts", lambda ns, name: rollouts_run(stack, ns, name, PACE))
