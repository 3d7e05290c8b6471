"""The contest as registered before it runs (harness/peers/contest.py): the candidates are where
the SLO says they are, each tool is given the same SLO, ours' checks are valid specs under both
judges, and docs/peers.md says what the module says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.canaries import canary_dict

from controlplane.local.inject import parse_fault
from controlplane.validation import check_object
from harness.peers.contest import CANDIDATES as NAMES
from harness.peers.contest import (
    STABLE_INJECT,
    TOOLS,
    TRAEFIK_BUCKETS,
    breaching,
    contest_candidate,
    contest_candidates,
    flagger_slo,
    limits,
    ours_checks,
    p95,
    rollouts_slo,
    runs_of,
    traefik_queries,
    wilson,
)
from harness.peers.render import Pace, ours_analysis

ROOT = Path(__file__).resolve().parents[2]
P95, MEDIAN = 0.75, 0.58
CANDIDATES = {c.name: c for c in contest_candidates(P95, MEDIAN)}


def delay_s(inject: tuple[str, ...]) -> float:
    found = [float(m.group(1)) for a in inject if (m := re.fullmatch(r"latency=\+(\d+)ms", a))]
    return found[0] / 1000 if found else 0.0


@pytest.mark.parametrize(
    ("name", "ratio", "expected"),
    [
        ("control", 1.0, "promoted"),
        ("within", 1.05, "promoted"),
        ("edge", 1.2, None),
        ("latency 2x", 2.4, "rolled back"),
    ],
)
def test_a_delayed_candidate_s_p95_is_the_ratio_it_is_named_for(
    name: str, ratio: float, expected: str | None
) -> None:
    got = CANDIDATES[name]
    assert (P95 + delay_s(got.candidate.inject)) / P95 == pytest.approx(ratio, abs=0.002)
    assert got.expected == expected
    # the stable fails its 1 % in every scenario, and so does a candidate that only differs in
    # latency: the A/A control is the stable's arguments exactly
    assert "errors=1%" in got.candidate.inject
    assert (got.breach_from_s == 0.0) == (expected == "rolled back")


def test_the_clearly_bad_ones_break_the_slo_by_their_margin() -> None:
    errors = CANDIDATES["errors 5x"]
    assert errors.candidate.inject == ("errors=6%",)  # 1 % + 5 x the 1-point allowance
    assert errors.expected == "rolled back"
    crash = CANDIDATES["crash loop"]
    assert crash.candidate.inject == ("crash-on-start",)
    assert (crash.expected, crash.breach_from_s) == ("rolled back", 0.0)
    # the drift adds half the median a minute: past 1.2 x P95 once its delay is 0.2 x P95
    drift = CANDIDATES["drift"]
    assert drift.candidate.inject[0] == "latency-drift=+290ms/1m"
    assert drift.breach_from_s == pytest.approx(0.2 * P95 / (0.5 * MEDIAN / 60))
    kind, per_second = parse_fault(drift.candidate.inject[0])  # the engine's own grammar
    assert kind == "latency-drift"
    assert per_second == pytest.approx(0.29 / 60)
    assert drift.expected == "rolled back"
    assert list(CANDIDATES) == [
        "control",
        "within",
        "edge",
        "latency 2x",
        "errors 5x",
        "drift",
        "crash loop",
    ]


def test_a_candidate_is_found_by_name_and_counts_its_breaching_requests() -> None:
    assert tuple(CANDIDATES) == NAMES
    assert STABLE_INJECT == ("errors=1%",) == CANDIDATES["control"].candidate.inject
    assert contest_candidate("latency 2x", P95, MEDIAN) == CANDIDATES["latency 2x"]
    with pytest.raises(ValueError, match="no candidate 'slow start'"):
        contest_candidate("slow start", P95, MEDIAN)
    sent = [0.0, 10.0, 40.0, 80.0]  # seconds after the candidate's arrival
    assert breaching(CANDIDATES["errors 5x"], sent) == 4  # every request, from the start
    assert breaching(CANDIDATES["control"], sent) == 0
    assert breaching(CANDIDATES["edge"], sent) == 0  # reported, never counted
    drift = CANDIDATES["drift"]  # past the bound after about 31 s
    assert breaching(drift, sent) == 2


def test_the_stable_s_p95_is_the_nearest_rank() -> None:
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([float(i) for i in range(100, 0, -1)]) == 95.0  # order does not matter
    assert p95([0.5]) == 0.5
    with pytest.raises(ValueError, match="no latency"):
        p95([])


def test_runs_and_their_intervals() -> None:
    assert runs_of("control") == 10
    assert {runs_of(n) for n in CANDIDATES if n != "control"} == {5}
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(0, 3)[1] == pytest.approx(0.5615, abs=1e-4)  # 0 of 3 says little
    assert wilson(0, 0) == (0.0, 1.0)


def test_every_peer_reads_the_same_slo_from_the_gateway() -> None:
    assert list(TRAEFIK_BUCKETS) == sorted(TRAEFIK_BUCKETS)
    assert {0.3, 0.75, 0.9, 1.2, 1.5, 2.5} <= set(TRAEFIK_BUCKETS)
    queries = traefik_queries("ns-app-canary@x", "ns-app-primary@x", "1m")
    assert set(queries) == set(limits()) == {"latency-ratio", "latency", "error-excess"}
    assert queries["latency-ratio"].count("histogram_quantile(0.95,") == 2
    assert 'service="ns-app-canary@x"' in queries["latency-ratio"]
    assert 'service="ns-app-primary@x"' in queries["latency-ratio"]
    assert limits() == {"latency-ratio": 1.2, "latency": 2.5, "error-excess": 1.0}
    # the error share as one minus the share without a 5xx: a candidate that has failed no
    # request yet has no 5xx series, and a query on that alone has no value, a failed check
    excess = queries["error-excess"]
    assert excess.count('code!~"5.."') == 2
    assert 'code=~"5' not in excess

    templates, metrics = flagger_slo("ns", "http://prom:9090", "c@x", "p@x")
    assert [t["metadata"]["name"] for t in templates] == [m["templateRef"]["name"] for m in metrics]
    assert all("{{ interval }}" in t["spec"]["query"] for t in templates)
    assert {m["name"]: m["thresholdRange"]["max"] for m in metrics} == limits()

    rollouts = rollouts_slo("http://prom:9090", "c@x", "p@x", "50s", failure_limit=3)
    assert {m["name"]: m["successCondition"] for m in rollouts} == {
        "latency-ratio": "result[0] <= 1.2",
        "latency": "result[0] <= 2.5",
        "error-excess": "result[0] <= 1",
    }
    assert {m["interval"] for m in rollouts} == {"50s"}
    assert {m["failureLimit"] for m in rollouts} == {3}


@pytest.mark.parametrize("judge", ["threshold", "sequential"])
def test_ours_checks_are_a_valid_spec_under_each_judge(judge: str) -> None:
    checks = ours_checks(judge)  # type: ignore[arg-type]
    assert [c["above"] for c in checks] == ["20%", "2.5s", "100%"]
    assert all(c.get("judge", "threshold") == judge for c in checks)
    steps = [{"weight": 10, "duration": "10s", "rollbackOn": checks}, {"weight": 100}]
    data = canary_dict(analysis=ours_analysis(Pace(6)), steps=steps, shadow=None)
    assert check_object(data) == []


def test_the_registered_design_in_the_docs_is_the_module_s() -> None:
    text = (ROOT / "docs" / "peers.md").read_text()
    section = text.split("## The contest, registered before it runs", 1)[1].split("\n## ", 1)[0]
    for name, got in CANDIDATES.items():
        expected = got.expected or "either"
        row = next((ln for ln in section.splitlines() if ln.startswith(f"| {name} |")), None)
        assert row is not None, name
        assert f"| {expected} |" in row, (name, row)
        assert f"| {runs_of(name)} |" in row, (name, row)
    for tool in TOOLS:
        assert f"`{tool}`" in section, tool
