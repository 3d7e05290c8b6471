"""The quality judge on real engines: a faithful quantization passes, a broken one is caught.

Owns the "## Quality judge on the real vLLM" section of ``docs/benchmarks-derivation.md`` and
the command that writes it::

    python bench/quality_real.py [--aa N] [--runs N] [--no-write]

The design, fixed before it ran (docs/benchmarks.md, "Quality judge on the real vLLM"):

* **Engines**: vLLM 0.32's CPU build (``make vllm``) serving the tiny Llama taught its four
  sentences (:func:`harness.tiny_model.build` with ``trained``, :data:`TRAIN_STEPS` Adam
  steps): the float32 stable, and three candidates each in an engine of its own: an A/A
  control (the same float32 weights), the faithful W8A8-INT8 twin (compressed-tensors, round
  to nearest), and the broken twin (the same checkpoint with every saved per-channel scale
  multiplied by a seeded factor in [0.5, 1.5]).
* **Pairs**: one pairer (``python -m controlplane.pairing``) per candidate in front of the
  stable and it, pairing every request; users' completions of 16 tokens at temperature 0.7,
  their prompts one to five consecutive words of the four sentences, drawn from a seed per
  run, sent one at a time, alternately to each variant's port.
* **Judge**: the product's own fold (:func:`controlplane.analysis.quality_judge.judge_page`) of
  the pairer's pages, read after each request, with the spec ``metric: agreement,
  tolerance: 0.1, alpha: 0.05``: a run ends when the test decides, or undecided at
  :data:`CAP` pairs.
* **Expected verdicts**: the A/A control and the faithful twin pass (a breach of either is a
  false rollback, expected at most alpha); the broken twin breaches.
* **Runs**: :data:`AA_RUNS` of the control, :data:`RUNS` of each twin; each run its own seed
  and its own test from nothing (the engines stay up between runs). Reported: each verdict's
  share with its Wilson 95 % interval, the pairs each run took to decide (median, max), and
  the mean disagreement measured.

``tests/bench/test_quality_real.py`` runs one run of each twin through :func:`trials`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

from controlplane.analysis.quality_judge import judge_page
from controlplane.local.ports import free_port
from controlplane.rollout.observations import QualityReading
from controlplane.spec.models import QualitySpec
from harness import vllm_cpu as engine
from harness.peers.contest import wilson
from harness.tiny_model import SENTENCES, TRAIN_STEPS

SECTION = "## Quality judge on the real vLLM"
NAME = "tiny"
SPEC = QualitySpec.model_validate(
    {"sample": "5%", "metric": "agreement", "tolerance": 0.1, "alpha": 0.05}
)
CAP = 200
"""Pairs after which a run ends undecided."""
AA_RUNS = 20
RUNS = 10
CANDIDATES = {"a/a": None, "faithful w8a8": "w8a8", "broken w8a8": "w8a8-broken"}
"""Each candidate's twin (None: the stable's own float32 weights, in an engine of its own)."""
EXPECTED = {"a/a": "pass", "faithful w8a8": "pass", "broken w8a8": "breach"}
WORDS = " ".join(SENTENCES).split()


def prompts(seed: int) -> Iterator[str]:
    """Endless prompts of one to five consecutive words of :data:`SENTENCES`, from ``seed``."""
    rng = random.Random(seed)
    while True:
        start = rng.randrange(len(WORDS))
        yield " ".join(WORDS[start : start + rng.randint(1, 5)])


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url + "/v1/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.load(answer)


def page(base: str, after: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/pairs?after={after}&limit=1000", timeout=60) as answer:
        found: dict[str, Any] = json.load(answer)
    return found


@dataclass
class Trial:
    """One run: its verdict (``pass``, ``breach``, ``undecided``), the pairs folded until then,
    and their mean score."""

    verdict: str
    pairs: int
    mean: float | None


@dataclass
class Paired:
    """A pairer in front of the stable and one candidate: its two ports' base URLs."""

    bases: tuple[str, str]


def trial(paired: Paired, seed: int) -> Trial:
    """Send requests until the judge, reading the pairs after each, decides (or :data:`CAP`)."""
    first = page(paired.bases[0], 0)
    reading = QualityReading(epoch=first["epoch"], seq=first["last"])  # a test from nothing
    for n, prompt in enumerate(prompts(seed)):
        body = {"model": NAME, "prompt": prompt, "max_tokens": 16, "temperature": 0.7}
        post(paired.bases[n % 2], body)
        deadline = time.monotonic() + 60  # bounds a hang only: the pair is scored after
        while (found := page(paired.bases[0], reading.seq))["last"] <= reading.seq:
            if time.monotonic() > deadline:
                raise RuntimeError("the pairer scored no pair of the last request")
            time.sleep(0.05)
        reading = judge_page(SPEC, reading, found, "")
        if reading.error:
            raise RuntimeError(reading.error)
        if reading.decided is not None:
            return Trial(reading.decided, reading.pairs, reading.mean)
        if reading.pairs >= CAP:
            return Trial("undecided", reading.pairs, reading.mean)
    raise AssertionError("unreachable: the prompts are endless")


@contextlib.contextmanager
def pairer(stable: str, candidate: str, folder: Path) -> Iterator[Paired]:
    """``python -m controlplane.pairing`` in front of ``stable`` and ``candidate``, pairing
    every request, its log beside ``folder`` (``<folder>.pairer.log``), until the block ends."""
    ports = (free_port(), free_port())
    argv = [sys.executable, "-m", "controlplane.pairing", "--host", "127.0.0.1"]
    argv += ["--stable", stable, "--candidate", candidate, "--per-minute", "100000"]
    argv += ["--stable-port", str(ports[0]), "--candidate-port", str(ports[1])]
    with folder.with_suffix(".pairer.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    bases = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page(bases[0], 0)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = folder.with_suffix(".pairer.log").read_text()[-2000:]
                    raise RuntimeError(said) from None
                time.sleep(0.2)
        yield Paired(bases)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def trials(runs: dict[str, int], folder: Path) -> dict[str, list[Trial]]:
    """``runs[candidate]`` runs of each named candidate of :data:`CANDIDATES`, against the
    trained float32 stable: every engine started (one after another, each once healthy) and
    kept up, then each candidate's runs in turn through its own pairer."""
    with contextlib.ExitStack() as stack:
        stable = stack.enter_context(
            engine.serve(
                engine.cached_tiny_model(trained=True),
                NAME,
                folder / "stable.log",
                "--max-model-len=256",
            )
        )
        paired = {}
        for name in runs:
            model = engine.cached_tiny_model(CANDIDATES[name], trained=True)
            label = name.replace("/", "").replace(" ", "-")
            served = stack.enter_context(
                engine.serve(model, NAME, folder / f"{label}.log", "--max-model-len=256")
            )
            paired[name] = stack.enter_context(pairer(stable.url, served.url, folder / label))
        return {name: [trial(paired[name], s) for s in range(1, n + 1)] for name, n in runs.items()}


def summary(found: dict[str, list[Trial]]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, runs in found.items():
        verdicts = [t.verdict for t in runs]
        expected = EXPECTED[name]
        right = sum(1 for v in verdicts if v == expected)
        low, high = wilson(right, len(runs))
        pairs = [t.pairs for t in runs]
        means = [t.mean for t in runs if t.mean is not None]
        rows[name] = {
            "runs": len(runs),
            "expected": expected,
            "as expected": right,
            "interval": [round(low, 3), round(high, 3)],
            "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
            "pairs median": statistics.median(pairs),
            "pairs max": max(pairs),
            "mean disagreement": round(statistics.fmean(means), 4) if means else None,
        }
    return rows


def section(rows: dict[str, Any], cmd: str, seconds: float) -> str:
    lines = [
        f"vLLM {engine.VERSION} (CPU build) serving the tiny Llama taught its sentences",
        f"({TRAIN_STEPS} Adam steps); the judge: `quality: {{metric: agreement, tolerance: 0.1,",
        f"alpha: 0.05}}`, ended undecided at {CAP} pairs. Every request paired.",
        "",
        "| candidate | expected | runs | as expected (Wilson 95 %) | verdicts | pairs to decide"
        " (median, max) | mean disagreement |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        low, high = row["interval"]
        verdicts = ", ".join(f"{v} {n}" for v, n in row["verdicts"].items())
        lines.append(
            f"| {name} | {row['expected']} | {row['runs']} | {row['as expected']} "
            f"({low:.2f}–{high:.2f}) | {verdicts} | {row['pairs median']:g}, "
            f"{row['pairs max']} | {row['mean disagreement']} |"
        )
    lines += [
        "",
        f"Measured {today()} on {machine_summary(())} in {seconds:.0f} s; `{cmd}`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=AA_RUNS, help="runs of the A/A control")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each twin")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)
    runs = {"a/a": args.aa, "faithful w8a8": args.runs, "broken w8a8": args.runs}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quality-real-") as top:
        rows = summary(trials(runs, Path(top)))
    seconds = time.monotonic() - began
    print(json.dumps(rows, indent=1))
    cmd = (
        "python bench/quality_real.py"
        + (f" --aa {args.aa}" if args.aa != AA_RUNS else "")
        + (f" --runs {args.runs}" if args.runs != RUNS else "")
    )
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, section(rows, cmd, seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
