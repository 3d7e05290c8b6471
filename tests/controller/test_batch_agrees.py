"""The controller's batched tick and the evaluator make the same results of the same answers.

The two routes from a Prometheus answer to a check result used to map failures each its own way
(the tick said a grouped ``NoData`` raw where the evaluator said "no data" and what it looked for;
the evaluator's sequential failures lacked the tick's ``(sequential)``). Now the tick only plans,
sends and splits, and hands every answer to the evaluator. Here one table of observations per
canary, each canary in a namespace of its own (so a grouped query's failure is its canary's
alone), is served both as the evaluator's per-canary queries and as the tick's grouped ones, and
every field of every check result must be the same on both routes, for every kind of answer: a
value, no series, NaN, too few samples, a stable without data or at 0, ``NoData``, an outage, a
rejected query, a failing request count, loads read or failing, and the sequential judge's
counts, histograms and closing test with the same failures.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from typing import Any

import pytest
from support.canaries import canary_dict, model_canary

from controlplane.analysis.evaluator import evaluate
from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.errors import NoData, ProviderError, ProviderQueryError, ProviderUnavailable
from controlplane.promql.samples import Sample
from controlplane.rollout.observations import CheckResult, DueCheck
from controlplane.spec.models import ModelCanary

NOW = 1_800_000_000.0
SINCE = NOW - 1800.0
CAND, STABLE = "nf4", "bf16"
BASE = canary_dict(
    traffic={"router": "kserve-knative"},  # error-rate from the engine alone
    analysis={
        "interval": "1m",
        "window": "5m",
        "metrics": [
            {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
            {"name": "errors", "builtin": "error-rate"},
        ],
    },
    shadow=None,
    budget=None,
)
THRESHOLD = [
    {"metric": "latency", "above": "300ms"},  # absolute: the stable's value is shown
    {"metric": "errors", "compare": "baseline", "above": "50%"},  # breached: loads read
]
SEQUENTIAL = [
    {"metric": "errors", "above": "1%", "judge": "sequential"},
    {"metric": "errors", "compare": "baseline", "above": "0%", "judge": "sequential"},
    {
        "metric": "errors",
        "compare": "baseline",
        "above": "0%",
        "judge": "sequential",
        "alpha": 0.05,
        "finalLook": 0.5,
    },
    {"metric": "latency", "above": "1s", "judge": "sequential"},
    {"metric": "latency", "compare": "baseline", "above": "10%", "judge": "sequential"},
    {
        "metric": "latency",
        "compare": "baseline",
        "above": "10%",
        "judge": "sequential",
        "test": "shift",
    },
]

HIST = {0.3: 500.0, 0.5: 900.0, 1.0: 990.0, 2.5: 999.0, math.inf: 1000.0}
SLOW = {0.3: 100.0, 0.5: 300.0, 1.0: 700.0, 2.5: 950.0, math.inf: 1000.0}
OUTAGE = ProviderUnavailable("HTTP 503 Service Unavailable")
REJECTED = ProviderQueryError('bad_data: 1:2: parse error: unexpected "}"')
GONE = NoData("the answer had no usable value")
GOOD = {
    ("latency", CAND): 0.2,
    ("latency", STABLE): 0.25,
    ("error-rate", CAND): 0.01,
    ("error-rate", STABLE): 0.01,
    ("requests", CAND): 5000.0,
    ("requests", STABLE): 5000.0,
    ("errors", CAND): 20.0,
    ("errors", STABLE): 20.0,
    ("buckets", CAND): HIST,
    ("buckets", STABLE): HIST,
    ("boundary", STABLE): 0.5,
}
BAD = {
    **GOOD,
    ("latency", CAND): 0.5,
    ("error-rate", CAND): 0.03,
    ("errors", CAND): 120.0,
    ("buckets", CAND): SLOW,
    ("load", CAND): 12.0,
    ("load", STABLE): 3.0,
}
NAN = {k: dict.fromkeys(v, math.nan) if isinstance(v, dict) else math.nan for k, v in GOOD.items()}
Table = dict[tuple[str, str], Any]

# name -> (sequential checks?, observations: (family, variant) -> value, or family -> error)
CASES: dict[str, tuple[bool, Table | dict[str, Any]]] = {
    "values": (False, GOOD),
    "breach-and-loads": (False, BAD),
    "loads-fail": (False, {**BAD, "load": OUTAGE}),
    "no-series": (False, {}),
    "nan": (False, NAN),
    "too-few-samples": (False, {**GOOD, ("requests", CAND): 42.0}),
    "stable-without-data": (False, {k: v for k, v in GOOD.items() if k[1] == CAND}),
    "stable-at-zero": (False, {**GOOD, ("error-rate", STABLE): 0.0}),
    "no-usable-value": (False, {**GOOD, "latency": GONE, "error-rate": GONE}),
    "outage": (False, {**GOOD, "latency": OUTAGE, "error-rate": OUTAGE}),
    "rejected": (False, {**GOOD, "latency": REJECTED, "error-rate": REJECTED}),
    "request-count-fails": (False, {**GOOD, "requests": OUTAGE}),
    "seq-values": (True, GOOD),
    "seq-breach-and-loads": (True, BAD),
    "seq-no-series": (True, {}),
    "seq-nan": (True, NAN),
    "seq-outage": (True, {**GOOD, "errors": OUTAGE}),
    "seq-rejected": (True, {**GOOD, "buckets": REJECTED}),
    "seq-histogram-unreadable": (True, {**GOOD, "buckets": GONE}),
    "seq-boundary-fails": (True, {**GOOD, "boundary": OUTAGE}),
    "seq-total-fails": (True, {**GOOD, "requests": REJECTED}),
    "seq-breach-by-session": (True, BAD),  # traffic.session.turns: counts weighed by session
    # a stable deployed as the step started: nothing before it, its reference at the first look
    "seq-stable-from-step": (True, {**BAD, ("history", STABLE): SINCE}),
    # its first scrape 150 s in: the looks at 60 and 120 s find nothing, the one at 180 s does
    "seq-stable-from-150s": (True, {**BAD, ("history", STABLE): SINCE + 150.0}),
}
BY_SESSION = {"router": "kserve-knative", "session": {"header": "x-session-id", "turns": 6}}
"""The spec of the by-session case (its router's rules are not what this test holds)."""


def _family(query: str) -> str:
    """Which observation ``query`` reads (the evaluator's per-canary text or the tick's
    grouped one)."""
    if "num_requests_running" in query:
        return "load"
    if "histogram_quantile" in query:
        return "boundary" if " @ " in query else "latency"
    if "_bucket" in query:
        return "buckets"
    if "increase(" in query:
        return "errors" if "finished_reason" in query else "requests"
    return "error-rate"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


class Observed:
    """A metric source answering from each canary's table, as Prometheus would: an instant
    query's empty result, NaN or ±Inf is ``NoData``, a vector holds NaN as it is; an error in a
    table fails every query of its family for that canary."""

    def __init__(self, tables: dict[str, dict[Any, Any]]) -> None:
        self.tables = tables

    def _failure(self, canary: str, family: str) -> ProviderError | None:
        found = self.tables[canary].get(family)
        return found if isinstance(found, ProviderError) else None

    def instant(self, query: str, at: float) -> float:
        canary, variant = _one(query, "canary"), _one(query, "variant")
        family = _family(query)
        failed = self._failure(canary, family)
        if failed is not None:
            raise failed
        value = self._value(canary, family, variant, query)
        if value is None or not math.isfinite(value):
            raise NoData(f"empty result for {query!r}")
        return float(value)

    def _value(self, canary: str, family: str, variant: str, query: str) -> Any:
        """The table's value, or None for a query pinned (``@``) no later than the variant's
        series begin (``("history", variant)``: the time its first sample was scraped)."""
        begins = self.tables[canary].get(("history", variant))
        pinned = re.search(r" @ ([0-9.]+)", query)
        if begins is not None and pinned is not None and float(pinned.group(1)) <= begins:
            return None
        return self.tables[canary].get((family, variant))

    def vector(self, query: str, at: float) -> list[Sample]:
        family = _family(query)
        grouped = re.search(r'canary=~"([^"]*)"', query)
        if grouped is None:  # the evaluator's histogram of one variant
            canaries, variants = [_one(query, "canary")], {_one(query, "variant")}
        else:
            canaries = grouped.group(1).replace("\\", "").split("|")  # names re-escaped
            only = re.search(r'variant=~"([^"]*)"', query)
            variants = set(only.group(1).split("|")) if only else {CAND, STABLE}
        out: list[Sample] = []
        for canary in canaries:
            failed = self._failure(canary, family)
            if failed is not None:
                raise failed
            for variant in sorted(variants):
                value = self._value(canary, family, variant, query)
                labels = {"canary": canary, "variant": variant} if grouped else {}
                if isinstance(value, dict):
                    out += [({**labels, "le": _le(le)}, n) for le, n in value.items()]
                elif value is not None:
                    out.append((labels, float(value)))
        return out

    def range(self, query: str, start: float, end: float, step: float) -> list[Any]:
        raise AssertionError(f"no range query expected: {query}")


def _one(query: str, label: str) -> str:
    found = re.search(rf'{label}="([^"]*)"', query)
    assert found is not None, query
    return found.group(1)


def _requests() -> list[Request]:
    out = []
    for name, (sequential, _) in CASES.items():
        checks = SEQUENTIAL if sequential else THRESHOLD
        steps = [{"weight": 25, "duration": "30m", "rollbackOn": checks}, {"weight": 100}]
        session = {"traffic": BY_SESSION} if name.endswith("by-session") else {}
        canary: ModelCanary = model_canary(name, f"ns-{name}", base=BASE, steps=steps, **session)
        # the step's duration is up: a check with finalLook runs its closing test
        due = [
            DueCheck(f"steps[0].rollbackOn[{i}]", c, closes_at=NOW - 60.0)
            for i, c in enumerate(canary.spec.steps[0].rollback_on)
        ]
        out.append(Request(name, canary, due, since=SINCE))
    return out


def _fields(result: CheckResult, *, evidence: bool = True) -> dict[str, Any]:
    found = asdict(result)
    if not evidence:  # judged together, the count looks' e-values only where they decide
        found.pop("evidence")
    return found


@pytest.mark.parametrize("batched", [True, False], ids=["judged-together", "one-at-a-time"])
def test_the_tick_and_the_evaluator_make_the_same_results(batched: bool) -> None:
    source = Observed({name: dict(table) for name, (_, table) in CASES.items()})
    requests = _requests()
    tick = BatchEvaluator(source, batched=batched).evaluate(requests, NOW)
    for req in requests:
        alone = evaluate(req.canary, req.due, source, NOW, since=req.since).checks
        assert tick[req.key].checks.keys() == alone.keys()
        for key, result in alone.items():
            got = tick[req.key].checks[key]
            assert _fields(got, evidence=not batched) == _fields(result, evidence=not batched), (
                req.key,
                key,
            )


def test_every_kind_of_answer_is_met() -> None:
    """The cases reach what they are named for, so the comparison above covers them."""
    source = Observed({name: dict(table) for name, (_, table) in CASES.items()})
    found = {
        req.key: req_obs.checks
        for req, req_obs in zip(
            _requests(),
            BatchEvaluator(source).evaluate(_requests(), NOW).values(),
            strict=True,
        )
    }
    latency, errors = "steps[0].rollbackOn[0]", "steps[0].rollbackOn[1]"
    assert {r.verdict for r in found["values"].values()} == {"pass"}
    bad = found["breach-and-loads"][errors]
    assert (bad.verdict, bad.load_candidate, bad.load_stable) == ("breach", 12.0, 3.0)
    assert "not a fair comparison" in bad.message
    assert found["loads-fail"][errors].load_candidate is None
    assert "no series matched vllm:e2e_request_latency_seconds_bucket" in (
        found["no-series"][latency].message
    )
    nan = found["nan"][errors]  # NaN is no data; a NaN request count is 0 requests
    assert ("no data: no series matched" in nan.message, nan.samples) == (True, 0.0)
    assert "42 of minSamples 100" in found["too-few-samples"][latency].message
    assert found["stable-without-data"][latency].stable is None
    assert "no data for the stable variant" in found["stable-without-data"][errors].message
    assert "relative drift is undefined" in found["stable-at-zero"][errors].message
    for name in ("no-usable-value", "outage", "rejected", "request-count-fails"):
        for result in found[name].values():
            assert result.verdict == "inconclusive"
            assert result.provider_error == (name != "no-usable-value"), (name, result)
    assert found["rejected"][latency].message == f"latency: {REJECTED}"
    seq = found["seq-breach-and-loads"]
    assert {r.decided for r in seq.values()} == {"breach"}
    assert "closing test" not in seq["steps[0].rollbackOn[2]"].message  # the anytime test won
    assert {r.verdict for r in found["seq-values"].values()} == {"pass"}
    assert {r.verdict for r in found["seq-no-series"].values()} == {"inconclusive"}
    for name, failing in (
        ("seq-outage", (0, 1, 2)),
        ("seq-rejected", (3, 4)),
        ("seq-boundary-fails", (4,)),
        ("seq-total-fails", (0, 1, 2)),
    ):
        for i in failing:
            result = found[name][f"steps[0].rollbackOn[{i}]"]
            assert result.provider_error, (name, i, result)
            assert result.message.startswith(f"{result.metric} (sequential): "), result.message
    for i in (4, 5):  # the quantile's boundary and the shift's reference, one interval in
        late = found["seq-stable-from-step"][f"steps[0].rollbackOn[{i}]"]
        assert late.decided == "breach", late.message
        assert "candidate requests since 60 s into the step" in late.message, late.message
        later = found["seq-stable-from-150s"][f"steps[0].rollbackOn[{i}]"]
        assert "candidate requests since 180 s into the step" in later.message, later.message
        assert found["seq-breach-and-loads"][f"steps[0].rollbackOn[{i}]"].decided == "breach"
    unreadable = found["seq-histogram-unreadable"]["steps[0].rollbackOn[3]"]
    assert (unreadable.verdict, unreadable.provider_error) == ("inconclusive", False)


def test_a_no_data_message_names_the_http_source_the_query_read() -> None:
    """``error-rate``'s "no data" hint is the query's that was sent: with the controller's
    HTTP source, not the spec's (the tick used to name the spec's)."""
    steps = [{"weight": 25, "duration": "30m", "rollbackOn": [{"metric": "errors", "above": "1%"}]}]
    canary = model_canary(
        "gw", "ns-gw", base=BASE, router="gateway-api", steps=[*steps, {"weight": 100}]
    )
    due = [DueCheck("steps[0].rollbackOn[0]", canary.spec.steps[0].rollback_on[0])]
    source = Observed({"gw": {}})
    tick = BatchEvaluator(source).evaluate([Request("gw", canary, due, http_source="istio")], NOW)
    alone = evaluate(canary, due, source, NOW, http_source="istio").checks[due[0].key]
    assert tick["gw"].checks[due[0].key].message == alone.message
    assert "no series matched istio_requests_total" in alone.message, alone.message


def test_a_stable_without_history_costs_the_tick_only_the_counts_it_judges() -> None:
    """The later starts' references are asked (pinned: kept once settled), but the counts only
    from the start that found the stable's data (180 s into the step here), not from every
    later start that has come."""
    source = Observed({name: dict(table) for name, (_, table) in CASES.items()})
    asked: list[str] = []
    vector = source.vector

    def recording(query: str, at: float) -> list[Sample]:
        asked.append(query)
        return vector(query, at)

    source.vector = recording  # type: ignore[method-assign]
    (req,) = [r for r in _requests() if r.key == "seq-stable-from-150s"]
    BatchEvaluator(source).evaluate([req], NOW)
    counts = [q for q in asked if "_bucket" in q and " @ " not in q and "quantile" not in q]
    windows = sorted({w for q in counts for w in re.findall(r"\[(\w+)\]", q)})
    # from the step start (30m) and from the start that found the data (180 s in: 27m)
    assert windows == ["27m", "30m"], counts
