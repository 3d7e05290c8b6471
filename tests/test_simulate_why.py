"""A replay says why it ended in progress, and names each check by its metric and step, with why
it was inconclusive (issue #41: "against a Prometheus with no matching series it reports
``in_progress``, exit 0, and no hint")."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from controlplane.cli.timeline import print_timeline
from controlplane.promql import queries
from controlplane.simulation import simulate
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file
from harness import StaticProvider

ROOT = Path(__file__).resolve().parents[1]
START = 1_800_000_000.0


def _canary(tmp_path: Path) -> ModelCanary:
    text = (ROOT / "canary" / "four-week.yml").read_text().replace("duration: 7d", "duration: 1h")
    path = tmp_path / "canary.yml"
    path.write_text(text)
    return validated_file(str(path))[0]


def test_no_series_says_why_it_stayed_in_progress(tmp_path: Path) -> None:
    canary = _canary(tmp_path)
    result = simulate(canary, StaticProvider({}), START, START + 3600)
    assert result.outcome == "in_progress"
    why = result.why()
    assert why is not None
    assert why.startswith("still at step 1 (weight 5%) when the replay ended: ")
    first = result.checks[0]
    assert (first.metric, first.where) == ("latency", "step 1")
    assert first.evaluations == first.inconclusive == result.evaluations - 1  # 1st: it starts
    n = first.evaluations
    assert f"latency inconclusive at {n} of {n} evaluations (no data: no series matched " in why
    assert "no series matched vllm:e2e_request_latency_seconds_bucket{" in first.last_inconclusive
    out = result.to_json()
    assert out["why"] == why
    assert out["checks"][0]["metric"] == "latency"
    assert out["checks"][0]["where"] == "step 1"


def test_too_few_samples_say_n_of_min_samples(tmp_path: Path) -> None:
    canary = _canary(tmp_path)
    answers = {}
    for _key, check in queries.all_checks(canary):
        plan = queries.check_queries(canary, check)
        answers[plan.candidate] = 0.1
        if plan.samples is not None:
            answers[plan.samples] = 12.0
    result = simulate(canary, StaticProvider(answers), START, START + 600)
    why = result.why()
    assert why is not None
    assert "too few samples: 12 of minSamples" in why


def test_the_timeline_names_checks_by_metric_with_the_reason(tmp_path: Path) -> None:
    canary = _canary(tmp_path)
    result = simulate(canary, StaticProvider({}), START, START + 600)
    buffer = io.StringIO()
    print_timeline(result, Console(file=buffer, width=400, color_system=None))
    text = buffer.getvalue()
    assert "│ latency │ step 1 │" in text
    assert "rollbackOn[" not in text
    assert "no data: no series matched" in text
    assert "why: still at step 1 (weight 5%) when the replay ended" in text
