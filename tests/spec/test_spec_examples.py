"""Every example in canary/ is valid, and each shows what its name promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.cli.main import main
from controlplane.spec.models import ModelCanary
from controlplane.validation import check_file, validated_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))


def test_the_promised_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "four-week.yml",
        "shadow-winrate.yml",
        "prompt-variant.yml",
        "cohort-tier1.yml",
        "fp8-h100.yml",
        "gpu-budget.yml",
        "adopted.yml",
        "chat-sessions.yml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_with_no_warning(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What ``canaryctl validate`` prints of each example: no warning and no overloaded step
    (the plan's lines are notes)."""
    assert main(["validate", str(path)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == "1 file(s) valid"
    assert not [line for line in lines if ": warning: " in line or "would run at" in line], lines
    assert not [line for line in lines if "does NOT fit" in line], lines


def test_the_budget_and_the_adopted_examples_show_what_they_are_named_for() -> None:
    budget = load("gpu-budget.yml").spec
    assert budget.capacity is not None
    assert budget.capacity.max_gpus is not None
    assert budget.plan is budget.capacity
    adopted = load("adopted.yml").spec
    assert adopted.adopted
    assert adopted.plan is None
    judges = {c.judge for step in adopted.steps for c in step.rollback_on}
    assert "sequential" in judges


def test_the_chat_example_pins_sessions_and_judges_them_by_session() -> None:
    from controlplane.analysis.sequential.support import design_effect

    chat = load("chat-sessions.yml")
    session = chat.spec.traffic.session
    assert session is not None
    assert session.header == "x-session-id"
    assert session.turns == 6
    assert design_effect(chat) == 11.0
    assert all(c.judge == "sequential" for c in chat.spec.steps[1].rollback_on)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path: Path) -> None:
    assert [p.format() for p in check_file(path)] == []


def load(name: str) -> ModelCanary:
    (canary,) = validated_file(ROOT / "canary" / name)
    return canary


def test_four_week_schedule() -> None:
    spec = load("four-week.yml").spec
    assert [s.weight for s in spec.steps] == [5, 25, 75, 100]
    assert [s.duration.seconds if s.duration else None for s in spec.steps] == [
        7 * 86400,
        7 * 86400,
        7 * 86400,
        None,
    ]
    first, second, third = (s.rollback_on for s in spec.steps[:3])
    assert [(c.metric, str(c.above), c.for_.seconds) for c in first] == [
        ("latency", "300ms", 0.0),
        ("errors", "0.1%", 0.0),
    ]
    (kpi,) = second
    assert (kpi.compare, str(kpi.above), str(kpi.below), str(kpi.window)) == (
        "baseline",
        "5%",
        "-5%",
        "4h",
    )
    assert [(c.metric, str(c.above)) for c in third] == [("latency-p99", "500ms")]
    assert spec.shadow is None


def test_shadow_winrate_promotes_on_two_days_of_win_rate() -> None:
    shadow = load("shadow-winrate.yml").spec.shadow
    assert shadow is not None
    promote = shadow.promote_on
    assert (promote.metric, promote.above and promote.above.value, promote.for_.seconds) == (
        "win-rate",
        0.03,
        2 * 86400,
    )


def test_prompt_variant_differs_only_in_the_prompt() -> None:
    spec = load("prompt-variant.yml").spec
    assert spec.stable.storage_uri == spec.candidate.storage_uri
    assert spec.stable.quantization == spec.candidate.quantization
    assert spec.stable.system_prompt != spec.candidate.system_prompt
    assert [s.weight for s in spec.steps] == [5, 100]


def test_cohort_tier1_has_cohort_budget_and_guards() -> None:
    spec = load("cohort-tier1.yml").spec
    assert spec.traffic.cohort is not None
    assert (spec.traffic.cohort.header, spec.traffic.cohort.values) == (
        "x-customer-tier",
        ["tier_1"],
    )
    assert spec.budget is not None
    assert (spec.budget.daily_limit, spec.budget.throttle_weight) == (100, 1)
    checks = {c.metric: c for c in spec.steps[0].rollback_on}
    assert checks["csat"].below is not None
    assert checks["csat"].below.value == -0.03
    assert checks["escalations"].above is not None
    assert checks["escalations"].above.value == 0.05


def test_fp8_h100_candidate() -> None:
    spec = load("fp8-h100.yml").spec
    assert (spec.candidate.quantization, spec.candidate.gpu) == ("fp8", "nvidia-h100-80gb")
