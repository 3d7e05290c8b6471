"""Does the sequential judge keep its level when a conversation stays on one variant?

Design, written before it ran (docs/judges.md, "Sessions"):

* **Traffic.** Conversations start at ``RATE`` a second through a one-hour step at a 5 % weight;
  each has a geometric number of turns of mean ``turns`` (2, 6 or 12), one every 30 s, cut at the
  step's end. Turns of one conversation share a random effect: its error probability is drawn
  from a Beta law of mean 1 % and intra-class correlation ``icc``, and its log latency has a
  normal offset whose share of the log latency's variance is ``icc`` (0, 0.1, 0.3 or 0.6).
* **Routing.** ``per-request``: each request goes to the candidate with probability 5 % (the
  weights without ``traffic.session``); ``sticky``: each conversation does, with all its turns
  (``traffic.session``).
* **Judge.** The product's ``judge: sequential`` through its own entry point
  (:func:`controlplane.analysis.sequential.check.judge_checks`), looks every minute, with the
  checks of :data:`SPEC`: errors ``compare: baseline, above: 0%`` and latency ``test: shift,
  above: 0%``, alpha 5 % each; ``by session``: the same with ``traffic.session.turns`` set to
  the conversations' mean (its design effect ``2 * turns - 1``), ``by request``: without it.
* **Candidates.** Identical to the stable (the A/A control: every rollback is false), and a bad
  one (3x the errors and every latency 1.5x) to show what the weighing costs.
* **Quality.** The quality judge's test (the betting e-process of
  :mod:`controlplane.analysis.sequential.mean_eprocess`, alpha 5 %) on pairs whose mean
  disagreement is exactly the tolerance, the pairs taken from every turn of pinned
  conversations or from each conversation's first turn only: every turn breaks the level once
  ``icc`` is above 0 (a conversation's earlier pairs predict its later ones); one pair a
  conversation keeps it (the pairs are independent).
* **Expected.** Sticky and by request: above alpha once ``icc`` is above 0 (the counts assume
  independent requests); per request and sticky by session: at most alpha on the identical
  candidate. The bad candidate: rolled back in every run by request; by session it needs more
  conversations, so it is rolled back later or, on a step too short, not at all.

``RUNS`` runs a cell. Owns the "## The judge on pinned conversations" section of
``docs/benchmarks-derivation.md``. Run: ``python bench/sessions_judge.py`` (about 3 minutes on
2 cores, the seed fixed); ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass

import numpy as np

from controlplane.analysis.sequential.check import CheckLook, Counts, judge_checks
from controlplane.analysis.sequential.mean_eprocess import decide
from controlplane.analysis.sequential.support import design_effect
from controlplane.spec.load import load_text
from controlplane.spec.models import ModelCanary

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

SECTION = "## The judge on pinned conversations"
RATE = 1.0  # conversations a second
WEIGHT = 0.05
MINUTES = 60
THINK_S = 30.0
ERROR_RATE = 0.01
ALPHA = 0.05
RUNS = 200
LES = (*(0.05 * 1.25**k for k in range(30)), math.inf)
"""Bucket bounds of the latency histogram: 50 ms to about 32 s, 25 % apart."""

SPEC = """\
apiVersion: canary.controlplane.dev/v1alpha1
kind: ModelCanary
metadata: {{name: chat, namespace: default}}
spec:
  model: {{name: chat-llm, maxModelLen: 4096, parameters: 1.0e9}}
  stable: {{name: bf16, storageUri: "hf://org/chat", quantization: none, gpu: nvidia-l4}}
  candidate: {{name: fp8, storageUri: "hf://org/chat", quantization: fp8, gpu: nvidia-l4}}
  traffic:
    router: gateway-api
    gateway: {{name: inference-gateway, namespace: gateway-system}}
    session: {{header: x-session-id{turns}}}
  analysis:
    interval: 1m
    metrics:
      - {{name: latency, builtin: e2e-latency, quantile: 0.95}}
      - {{name: errors, builtin: error-rate}}
  steps:
    - weight: 5
      duration: 60m
      rollbackOn:
        - {{metric: errors, compare: baseline, above: 0%, judge: sequential, alpha: {alpha}}}
        - {{metric: latency, compare: baseline, above: 0%, judge: sequential, test: shift,
           alpha: {alpha}}}
"""


@functools.cache
def canary(turns: float | None) -> ModelCanary:
    """:data:`SPEC` with ``traffic.session.turns`` (None: the judge weighs by request)."""
    text = SPEC.format(turns="" if turns is None else f", turns: {turns:g}", alpha=ALPHA)
    (found,) = load_text(text, "sessions.yml")
    return found


@dataclass(frozen=True)
class Cell:
    turns: float
    icc: float
    sticky: bool
    by_session: bool
    error_factor: float = 1.0
    slower: float = 1.0


def _histograms(minute: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Cumulative-over-time, cumulative-over-bounds bucket counts: [minute, bound]."""
    les = np.array(LES)
    index = np.searchsorted(les, latency)  # the first bound at or above each latency
    per = np.zeros((MINUTES, les.size))
    np.add.at(per, (minute, index), 1.0)
    return np.cumsum(np.cumsum(per, 1), 0)


def run(rng: np.random.Generator, cell: Cell) -> tuple[str, int]:
    """One step: ``"rolled back"``, ``"promoted"`` (passed early) or ``"ran out"``, and the
    minute it was decided (1-based; the step's length when it ran out)."""
    n = rng.poisson(RATE * MINUTES * 60)
    start = rng.uniform(0.0, MINUTES * 60.0, n)
    turns = rng.geometric(1.0 / cell.turns, n)
    if cell.icc > 0:
        spread = 1.0 / cell.icc - 1.0
        p = rng.beta(ERROR_RATE * spread, (1.0 - ERROR_RATE) * spread, n)
    else:
        p = np.full(n, ERROR_RATE)
    offset = rng.normal(0.0, math.sqrt(cell.icc) * 0.5, n)
    conv = np.repeat(np.arange(n), turns)
    k = np.concatenate([np.arange(t) for t in turns])
    at = start[conv] + THINK_S * k
    kept = at < MINUTES * 60
    conv, at = conv[kept], at[kept]
    # sticky: each conversation's turns follow its draw; per request: each turn its own
    on_cand = (rng.random(n) < WEIGHT)[conv] if cell.sticky else rng.random(conv.size) < WEIGHT
    factor = np.where(on_cand, cell.error_factor, 1.0)
    errors = rng.random(conv.size) < np.minimum(p[conv] * factor, 1.0)
    own = rng.normal(0.0, math.sqrt(1.0 - cell.icc) * 0.5, conv.size)
    latency = np.exp(math.log(0.8) + offset[conv] + own) * np.where(on_cand, cell.slower, 1.0)
    minute = (at // 60).astype(int)
    reference = _histograms(np.zeros(2000, int), np.exp(math.log(0.8) + rng.normal(0, 0.5, 2000)))
    ref = dict(zip(LES, reference[0], strict=True))
    spec = canary(cell.turns if cell.by_session else None)
    deff = design_effect(spec)
    checks = spec.spec.steps[0].rollback_on
    metrics = [spec.metric(c.metric) for c in checks]
    cand_h, stable_h = (
        _histograms(minute[on_cand], latency[on_cand]),
        _histograms(minute[~on_cand], latency[~on_cand]),
    )
    looks = []
    for m in range(MINUTES):
        sel = minute <= m
        counts = {
            "errors": Counts(
                cand_events=float(errors[sel & on_cand].sum()),
                cand_total=float((sel & on_cand).sum()),
                stable_events=float(errors[sel & ~on_cand].sum()),
                stable_total=float((sel & ~on_cand).sum()),
            ),
            "latency": Counts(
                cand_buckets=dict(zip(LES, cand_h[m], strict=True)),
                stable_buckets=dict(zip(LES, stable_h[m], strict=True)),
                reference_buckets=ref,
            ),
        }
        for check, metric in zip(checks, metrics, strict=True):
            assert metric is not None
            looks.append(CheckLook(check.metric, check, metric, counts[check.metric], None, deff))
    verdicts = [r.decided for r in judge_checks(looks)]
    for m in range(MINUTES):
        errs, lat = verdicts[2 * m], verdicts[2 * m + 1]
        if "breach" in (errs, lat):
            return "rolled back", m + 1
        if errs == lat == "pass":
            return "promoted", m + 1
    return "ran out", MINUTES


def cells() -> list[Cell]:
    """The table's rows: the A/A control at every session length and correlation, then the bad
    candidate."""
    rows = [
        Cell(turns, icc, sticky, by_session)
        for turns in (2.0, 6.0, 12.0)
        for icc in (0.0, 0.1, 0.3, 0.6)
        for sticky, by_session in ((False, False), (True, False), (True, True))
    ]
    bad = [
        Cell(6.0, 0.3, sticky, by_session, error_factor=3.0, slower=1.5)
        for sticky, by_session in ((False, False), (True, False), (True, True))
    ]
    return rows + bad


def rates(cell: Cell, runs: int, seed: int) -> dict[str, int]:
    """How many of ``runs`` steps ended each way, and ``"median minute"`` of the rollbacks (0:
    none)."""
    rng = np.random.default_rng(seed)
    out = {"rolled back": 0, "promoted": 0, "ran out": 0}
    minutes = []
    for _ in range(runs):
        outcome, minute = run(rng, cell)
        out[outcome] += 1
        if outcome == "rolled back":
            minutes.append(minute)
    out["median minute"] = int(np.median(minutes)) if minutes else 0
    return out


QUALITY_TOLERANCE = 0.2
"""The quality rows' tolerance on the disagreement (a pair's score in [0, 1])."""
PAIRS = 400
"""Pairs a quality run may sample: about an hour at one pair every 9 s."""


def quality_run(
    rng: np.random.Generator, turns: float, icc: float, *, one_per_session: bool
) -> bool:
    """One run of the quality judge's test (:func:`~controlplane.analysis.sequential.
    mean_eprocess.decide`, alpha 5 %) on a candidate whose mean disagreement is exactly the
    tolerance (the null's edge: every breach is false). Conversations of geometric length
    ``turns`` whose turns share a disagreement probability drawn at intra-class correlation
    ``icc``; their turns interleave in time (a turn every 30 s, a conversation starting every
    9 s). Paired: every turn, or the first turn of each conversation only. True: breached."""
    n = PAIRS
    spread = 1.0 / icc - 1.0 if icc > 0 else math.inf
    m = QUALITY_TOLERANCE
    p = rng.beta(m * spread, (1.0 - m) * spread, n) if icc > 0 else np.full(n, m)
    length = rng.geometric(1.0 / turns, n)
    if one_per_session:
        length = np.ones(n, dtype=int)
    conv = np.repeat(np.arange(n), length)
    k = np.concatenate([np.arange(t) for t in length])
    order = np.argsort(conv * 9.0 + k * 30.0, kind="stable")[:n]
    scores = (rng.random(order.size) < p[conv[order]]).astype(float)
    decided, _ = decide(scores, m, 1.0, 0.05)
    return decided == "breach"


def quality_table(runs: int, seed: int) -> str:
    """The quality judge's false breaches, every turn paired against one pair a conversation."""
    lines = [
        "| turns | icc | pairs taken | false breaches |",
        "| ---: | ---: | --- | ---: |",
    ]
    rows = [(t, i) for t in (2.0, 6.0) for i in (0.0, 0.3, 0.6)]
    for j, (turns, icc) in enumerate(rows):
        for one in (False, True):
            rng = np.random.default_rng(seed + 100 + 2 * j + one)
            got = sum(quality_run(rng, turns, icc, one_per_session=one) for _ in range(runs))
            taken = "the first of each conversation" if one else "every turn"
            lines.append(f"| {turns:g} | {icc:g} | {taken} | {got} of {runs} |")
    return "\n".join(lines)


def table(runs: int, seed: int) -> str:
    """The table of every :func:`cells` row, ``runs`` runs each."""
    lines = [
        "| candidate | turns | icc | routing | judge weighs | rolled back | promoted early "
        "| median minute of a rollback |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for i, cell in enumerate(cells()):
        got = rates(cell, runs, seed + i)
        who = "identical" if cell.error_factor == 1.0 else "3x errors, 1.5x slower"
        routing = "sticky" if cell.sticky else "per request"
        weighs = "by session" if cell.by_session else "by request"
        lines.append(
            f"| {who} | {cell.turns:g} | {cell.icc:g} | {routing} | {weighs} | "
            f"{got['rolled back']} of {runs} | {got['promoted']} | "
            f"{got['median minute'] or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    body = "\n".join(
        [
            "An identical candidate (every rollback false) and a bad one, one-hour steps at 5 %, "
            "the product's two sequential checks at alpha 5 % each (a 10 % level a step); "
            "the design is the docstring of `bench/sessions_judge.py`:",
            "",
            table(args.runs, args.seed),
            "",
            "The quality judge's test (the betting e-process on a pair's disagreement, alpha "
            f"5 %, tolerance {QUALITY_TOLERANCE:g}, {PAIRS} pairs a run) on a candidate exactly "
            "on the tolerance, its pairs taken from every turn or from each conversation's "
            "first turn only:",
            "",
            quality_table(args.runs, args.seed),
            "",
            f"Measured {today()} on {machine_summary()}; `python bench/sessions_judge.py` "
            f"({args.runs} runs a row, seed {args.seed}).",
        ]
    )
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
        print(f"\nwrote the '{SECTION}' section of {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
