"""Pure parts of the local stack: ``--inject`` parsing and ``--time-scale`` rewriting."""

from __future__ import annotations

import pytest
from support.local import demo

from controlplane.errors import UsageError
from controlplane.local.inject import Faults, parse_injection, parse_injections
from controlplane.local.timescale import MIN_WINDOW_SCRAPES, scale_canary

NAMES = {"bf16": "stable", "nf4": "candidate"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("candidate.latency=+300ms", ("candidate", "latency", 0.3)),
        ("candidate.latency=300ms", ("candidate", "latency", 0.3)),
        ("stable.latency=+1.5s", ("stable", "latency", 1.5)),
        ("candidate.errors=2%", ("candidate", "errors", 0.02)),
        ("candidate.errors=0.05", ("candidate", "errors", 0.05)),
        ("nf4.errors=10%", ("candidate", "errors", 0.1)),
        ("nf4.engine-errors=5%", ("candidate", "engine-errors", 0.05)),
        ("candidate.wrong-answers=100%", ("candidate", "wrong-answers", 1.0)),
        (" bf16.latency = 20ms ", ("stable", "latency", 0.02)),
    ],
    ids=[
        "latency-plus",
        "latency",
        "stable-seconds",
        "errors-pct",
        "errors-fraction",
        "variant-name",
        "engine-errors",
        "wrong-answers",
        "spaces",
    ],
)
def test_parse_injection(text: str, expected: tuple[str, str, float]) -> None:
    role, kind, value = parse_injection(text, NAMES)
    assert (role, kind) == expected[:2]
    assert value == pytest.approx(expected[2])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("candidate.latency", "expected ROLE.KIND=VALUE"),
        ("canary.latency=+3ms", "unknown variant 'canary'"),
        ("candidate.speed=2x", "invalid threshold"),
        ("candidate.cpu=2", "unknown kind 'cpu'"),
        ("candidate.latency=2%", "latency takes a delay"),
        ("candidate.errors=300ms", "errors takes a share"),
        ("candidate.errors=150%", "errors takes a share"),
        ("candidate.wrong-answers=1s", "wrong-answers takes a share"),
    ],
    ids=[
        "no-value",
        "unknown-role",
        "bad-number",
        "unknown-kind",
        "latency-pct",
        "errors-time",
        "errors-over-100",
        "wrong-answers-time",
    ],
)
def test_parse_injection_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_injection(text, NAMES)


def test_a_latency_drift_grows_with_the_time_since_start() -> None:
    """``latency-drift=+DELAY/SPAN``: DELAY more for every SPAN since the server started, on
    top of a fixed ``latency``; it round-trips through :meth:`Faults.injections`."""
    role, kind, value = parse_injection("candidate.latency-drift=+100ms/1m", NAMES)
    assert (role, kind) == ("candidate", "latency-drift")
    assert value == pytest.approx(0.1 / 60)
    faults = parse_injections(["nf4.latency=+50ms", "nf4.latency-drift=+2s/10s"], NAMES)
    drift = faults["candidate"]
    assert drift == Faults(latency_s=0.05, latency_drift=0.2)
    assert drift.active
    assert drift.delay_s(0.0) == pytest.approx(0.05)
    assert drift.delay_s(30.0) == pytest.approx(6.05)
    assert drift.delay_s(-5.0) == pytest.approx(0.05)  # a clock read before the start: no growth
    assert drift.describe() == "latency +50ms, latency +12000ms a minute"
    again = parse_injections([f"candidate.{text}" for text in drift.injections()], NAMES)
    assert again["candidate"].latency_drift == pytest.approx(drift.latency_drift)
    assert again["candidate"].latency_s == pytest.approx(drift.latency_s)


@pytest.mark.parametrize(
    "text",
    [
        "candidate.latency-drift=+100ms",
        "candidate.latency-drift=2%/1m",
        "candidate.latency-drift=+100ms/0",
        "candidate.latency-drift=+100ms/soon",
        "candidate.latency-drift=-100ms/1m",
    ],
    ids=["no-span", "share", "zero-span", "bad-span", "negative"],
)
def test_parse_latency_drift_errors(text: str) -> None:
    with pytest.raises(UsageError, match="latency-drift takes a delay per span"):
        parse_injection(text, NAMES)


def test_parse_injections_combines_per_role() -> None:
    faults = parse_injections(
        ["candidate.latency=+300ms", "candidate.errors=2%", "stable.errors=1%"], NAMES
    )
    assert faults["candidate"] == Faults(latency_s=0.3, error_fraction=0.02)
    assert faults["stable"] == Faults(error_fraction=0.01)
    both = parse_injections(["candidate.errors=2%", "candidate.engine-errors=3%"], NAMES)
    assert both["candidate"] == Faults(error_fraction=0.02, engine_error_fraction=0.03)
    assert faults["candidate"].describe() == "latency +300ms, errors 2%"
    assert not parse_injections([], NAMES)["stable"].active
    wrong = parse_injections(["candidate.wrong-answers=50%"], NAMES)["candidate"]
    assert wrong == Faults(wrong_answer_fraction=0.5)
    assert wrong.active
    assert wrong.describe() == "wrong answers 50%"
    assert wrong.injections() == ["wrong-answers=0.5"]


@pytest.mark.parametrize(
    ("factor", "scrape", "interval", "window", "step", "floored"),
    [
        (1, 1.0, 60.0, 600.0, 1800.0, 0),
        (60, 1.0, 1.0, 10.0, 30.0, 0),
        (200, 1.0, 1.0, 4.0, 9.0, 2),
        (200, 0.5, 0.5, 3.0, 9.0, 1),
        (3600, 1.0, 1.0, 4.0, 0.5, 2),
    ],
    ids=["unscaled", "demo-60", "floors-200", "fast-scrape", "extreme"],
)
def test_scale_canary(
    factor: float, scrape: float, interval: float, window: float, step: float, floored: int
) -> None:
    canary = demo()
    scaled, scaling = scale_canary(canary, factor, scrape)
    analysis = scaled.spec.analysis
    assert analysis.interval.seconds == pytest.approx(interval)
    assert analysis.window.seconds == pytest.approx(window)
    assert analysis.window.seconds >= MIN_WINDOW_SCRAPES * scrape
    assert scaled.spec.steps[0].duration is not None
    assert scaled.spec.steps[0].duration.seconds == pytest.approx(step)
    assert len(scaling.notes) == floored
    assert scaled.spec.steps[-1].duration is None
    # everything else is untouched
    assert scaled.spec.steps[0].rollback_on[0].above == canary.spec.steps[0].rollback_on[0].above
    assert scaled.metadata == canary.metadata


def test_scale_check_window_and_for() -> None:
    canary = demo()
    check = (
        canary.spec.steps[0]
        .rollback_on[0]
        .model_copy(
            update={"window": canary.spec.analysis.window, "for_": canary.spec.analysis.interval}
        )
    )
    step = canary.spec.steps[0].model_copy(update={"rollback_on": [check]})
    spec = canary.spec.model_copy(update={"steps": [step, *canary.spec.steps[1:]]})
    scaled, _ = scale_canary(canary.model_copy(update={"spec": spec}), 60, 1.0)
    got = scaled.spec.steps[0].rollback_on[0]
    assert got.window is not None
    assert got.window.seconds == pytest.approx(10.0)
    assert got.for_.seconds == pytest.approx(1.0)


@pytest.mark.parametrize("factor", [0, -2, float("nan")], ids=["zero", "negative", "nan"])
def test_scale_rejects_bad_factor(factor: float) -> None:
    with pytest.raises(UsageError, match="time-scale"):
        scale_canary(demo(), factor, 1.0)
