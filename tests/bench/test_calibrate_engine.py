"""Tests of bench/calibrate_engine.py: the fit recovers a simulated engine's own parameters, and
the report writes the table the results page quotes.

The synthetic "real" engine is the simulated one with known parameters, another seed (its
jitter is drawn differently from the fit's) and every timing on its virtual clock, so nothing
here reads the wall clock.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
LOADS = ((1, 32), (2, 32), (4, 32), (8, 32), (1, 512), (2, 512))
TOKENS = 16
"""Answers this long keep the simulated runs short (the bench's are 128 tokens)."""
TOLERANCE = 0.01
"""How close the fit comes to every known parameter without jitter (a share of it)."""


@pytest.fixture
def cal(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    monkeypatch.delitem(sys.modules, "bench.calibrate_engine", raising=False)
    return importlib.import_module("bench.calibrate_engine")


def _off(found: object, known: object, shares: dict[str, float]) -> dict[str, str]:
    """The parameters of ``found`` further than ``shares[name]`` (a share) from ``known``'s;
    ``batch_slowdown``'s bound is absolute (a share of a share)."""
    out = {}
    for name, bound in shares.items():
        f, k = getattr(found, name), getattr(known, name)
        miss = abs(f - k) if name == "batch_slowdown" else abs(f / k - 1)
        if miss > bound:
            out[name] = f"{f:.4g} (known {k:.4g})"
    return out


@pytest.mark.parametrize(
    ("decode", "slowdown", "prefill", "overhead"),
    [
        (0.018, 0.06, 40e-6, 0.008),  # a CPU-like engine: the batch term matters
        (0.010, 0.01, 100e-6, 0.015),  # the engine's defaults for the batch and the overhead
        (0.005, 0.00, 10e-6, 0.030),  # a step that does not grow; the overhead dominates
    ],
)
def test_the_fit_recovers_known_parameters(
    cal: ModuleType, decode: float, slowdown: float, prefill: float, overhead: float
) -> None:
    """Without jitter the simulated engine's medians are exact: the fit must find its own
    parameters within 1 % (the batch term within 0.01 of a step)."""
    known = cal.Params(decode, slowdown, prefill, overhead)
    synthetic = cal.simulate(known, LOADS, 4, jitter_sigma=0.0, max_tokens=TOKENS)
    found = cal.fit(synthetic, 4, jitter_sigma=0.0, max_tokens=TOKENS)
    bounds = dict.fromkeys(("decode_s_per_token", "prefill_s_per_token", "overhead_s"), TOLERANCE)
    assert not _off(found, known, {**bounds, "batch_slowdown": TOLERANCE})
    assert (
        cal.worst(synthetic, cal.simulate(found, LOADS, 4, jitter_sigma=0.0, max_tokens=TOKENS))
        <= TOLERANCE
    )


@pytest.mark.slow
def test_the_fit_recovers_them_through_the_jitter(cal: ModuleType) -> None:
    """With the engine's jitter, and the synthetic engine's drawn from another seed than the
    fit's, as the bench runs it (32 requests a load): the step within 5 %, the batch term within
    0.01, a prompt token within 15 %, the overhead (a few ms left of a TTFT of tens) within 30 %,
    and the refitted medians within the bench's bar."""
    known = cal.Params(0.018, 0.06, 40e-6, 0.008)
    synthetic = cal.simulate(known, LOADS, 32, seed=1000, max_tokens=TOKENS)
    found = cal.fit(synthetic, 32, max_tokens=TOKENS)
    bounds = {
        "decode_s_per_token": 0.05,
        "batch_slowdown": 0.01,
        "prefill_s_per_token": 0.15,
        "overhead_s": 0.30,
    }
    assert not _off(found, known, bounds)
    assert cal.worst(synthetic, cal.simulate(found, LOADS, 32, max_tokens=TOKENS)) <= cal.TOLERANCE


def test_holding_the_batch_term_shows_in_the_residuals(cal: ModuleType) -> None:
    """An engine whose step grows 10 % per request is not fitted with the default 1 %."""
    known = cal.Params(0.018, 0.10, 40e-6, 0.008)
    synthetic = cal.simulate(known, LOADS, 4, jitter_sigma=0.0, max_tokens=TOKENS)
    held = cal.fit(synthetic, 4, free_slowdown=False, jitter_sigma=0.0, max_tokens=TOKENS)
    assert held.batch_slowdown == cal.BATCH_SLOWDOWN
    sim = cal.simulate(held, LOADS, 4, jitter_sigma=0.0, max_tokens=TOKENS)
    assert cal.worst(synthetic, sim) > cal.TOLERANCE


def _real(cal: ModuleType, clients: int, prompt: int) -> object:
    """A real load: the client's samples (TTFT 10..50 ms, ITL 18..22 ms), vLLM's means (6 ms,
    1.2 ms) and 0.9 requests running on average."""
    ttft = (0.010, 0.020, 0.030, 0.040, 0.050)
    itl = (0.018, 0.019, 0.020, 0.021, 0.022)
    return cal.Observed(clients, prompt, ttft, itl, 0.006, 0.0012, 0.9)


def _sim(cal: ModuleType, clients: int, prompt: int, scale: float) -> object:
    """A simulated load whose means are vLLM's times ``scale`` (no means of vLLM's own)."""
    ttft = tuple(scale * x for x in (0.002, 0.004, 0.006, 0.008, 0.010))
    itl = tuple(scale * x for x in (0.0010, 0.0011, 0.0012, 0.0013, 0.0014))
    return cal.Observed(clients, prompt, ttft, itl, None, None, 0.85)


def test_the_table_is_the_docs_format(cal: ModuleType) -> None:
    real = [_real(cal, 1, 32), _real(cal, 8, 512)]
    sim = [_sim(cal, 1, 32, 1.1), _sim(cal, 8, 512, 0.5)]
    lines = cal.table(real, sim)
    assert lines[0].startswith("| load (clients × prompt tokens) | running, real / simulated |")
    assert lines[1] == "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    assert all(line.count("|") == 11 for line in lines)
    # vLLM's means against the simulated means; the simulated p50 / p90 linear between order
    # statistics (of 2..10 ms: 6 and 9.2)
    assert lines[2] == (
        "| 1 × 32 | 0.90 / 0.85 | 6.0 | 6.6 | +10% | 6.6 / 10.1 | 1.2 | 1.3 | +10% | 1.3 / 1.5 |"
    )
    assert lines[3] == (
        "| 8 × 512 | 0.90 / 0.85 | 6.0 | 3.0 | -50% | 3.0 / 4.6 | 1.2 | 0.6 | -50% | 0.6 / 0.7 |"
    )
    assert math.isclose(cal.worst(real, sim), 0.5)
    client = cal.client_table(real)
    assert client[2] == "| 1 × 32 | 30.0 / 46.0 | 30.0 | 6.0 | 20.0 / 21.6 | 20.0 | 1.2 |"


def test_the_section_quotes_the_command_and_judges_the_fit(cal: ModuleType) -> None:
    real = [_real(cal, 1, 32), _real(cal, 2, 32)]
    near = [_sim(cal, 1, 32, 1.05), _sim(cal, 2, 32, 0.9)]
    far = [_sim(cal, 1, 32, 1.05), _sim(cal, 2, 32, 1.5)]
    results = {
        "date": "2026-11-26",
        "machine": "Linux x86_64, 2 CPUs",
        "engine": "vLLM 0.32.0 (CPU build), torch 2.13.0",
        "flags": "--max-num-seqs 256",
        "maxTokens": 128,
        "requests": 5,
        "loadAverage": [2.5, 2.0, 1.5],
        "wallSeconds": 180,
        "loads": [o.to_json() for o in real],
    }
    params = cal.Params(0.018, 0.05, 2e-5, 0.008)
    text = cal.render(results, {"free": (params, near), "held": (params, far)})
    lines = text.splitlines()
    assert "With the batch term fitted: fits: the worst mean is 10% off (the bar: ±15%)." in (lines)
    assert f"With the batch term held at {cal.BATCH_SLOWDOWN}: does not fit: the worst " in text
    assert "- Command: `python bench/calibrate_engine.py` (180 s wall, " in text
    assert "load average 2.5, 2.0, 1.5 (1, 5, 15 min)" in text
    assert "| 2 × 32 | 0.90 / 0.85 | 6.0 | 5.4 | -10% |" in text
    assert [cal.Observed.from_json(o.to_json()) for o in real] == real


def test_the_think_time_gives_the_engine_the_batch_it_saw(cal: ModuleType) -> None:
    """4 clients that kept 2 requests running on average waited as long as a request took."""
    busy = 0.006 + (cal.MAX_TOKENS - 1) * 0.0012
    seen = cal.Observed(4, 32, (), (), 0.006, 0.0012, 2.0)
    assert math.isclose(cal.think_time(seen), busy)
    sim = cal.simulate(
        cal.Params(0.0012, 0.0, 1e-6, 0.004), [(4, 32)], 16, thinks=[busy], jitter_sigma=0.0
    )
    assert sim[0].engine_running_mean == pytest.approx(2.0, rel=0.1)
