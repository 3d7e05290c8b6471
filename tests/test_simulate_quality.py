"""A quality canary replayed against the pairs recorded from its pairer (``canaryctl simulate
--pairs FILE``): the judge reads, at each evaluation, the pairs scored by then, as the controller
reads the pairer, so faithful pairs promote, worse ones roll back on ``quality``, and a replay
with no pairs holds the step before the last and says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.canaries import SMALL, canary_dict, model_canary

from controlplane.analysis.recorded_pairs import (
    PAGE_LIMIT,
    RecordedPairs,
    load_pairs,
    recorded_pairs,
)
from controlplane.cli.main import main as cli
from controlplane.controller.pairs import PAGE
from controlplane.errors import UsageError
from controlplane.simulation import NO_PAIRS, simulate
from harness import StaticProvider

START = 1_800_000_000.0
KPI = "vector(1)"
QUALITY = {"sample": "5%", "metric": "agreement", "tolerance": 0.1, "alpha": 0.05}
BASE = canary_dict(
    base=SMALL,
    analysis={"interval": "1m", "metrics": [{"name": "kpi", "query": KPI}]},
    steps=[
        {"weight": 10, "duration": "3m", "rollbackOn": [{"metric": "kpi", "below": 0.5}]},
        {"weight": 50, "duration": "3m", "rollbackOn": [{"metric": "kpi", "below": 0.5}]},
        {"weight": 100},
    ],
    quality=QUALITY,
)


def page(agreements: list[float], *, epoch: str = "e1", first: int = 1, every: float = 5.0) -> str:
    """One page of the pairer, as ``GET /pairs`` answers it: a pair scored every ``every`` s."""
    pairs = [
        {
            "seq": first + i,
            "at": START + (first + i) * every,
            "servedBy": "stable",
            "agreement": a,
            "exactMatch": a == 1.0,
            "kl": 0.0 if a == 1.0 else 0.5,
            "klTokens": 8,
            "tokens": 8,
        }
        for i, a in enumerate(agreements)
    ]
    return json.dumps({"epoch": epoch, "after": first - 1, "lost": 0, "pairs": pairs})


def test_faithful_pairs_promote_and_the_reading_is_shown() -> None:
    pairs = recorded_pairs([page([1.0] * 200)])
    result = simulate(
        model_canary(base=BASE), StaticProvider({KPI: 1.0}), START, START + 3600, pairs=pairs
    )
    assert result.outcome == "promoted", result.events
    quality = result.quality_json()
    assert quality is not None
    assert quality["decided"] == "pass", quality
    assert quality["pairs"] >= 1
    assert quality["mean"] == 0.0
    assert "is within the tolerance 0.1" in quality["message"]
    assert result.to_json()["quality"] == quality


def test_pairs_that_disagree_roll_back_on_quality_when_they_were_scored() -> None:
    # the first 40 pairs agree; those scored after minute 4 (seq 49 on) answer otherwise
    pairs = recorded_pairs([page([1.0] * 40 + [0.7] * 8 + [0.2] * 200)])
    result = simulate(
        model_canary(base=BASE), StaticProvider({KPI: 1.0}), START, START + 3600, pairs=pairs
    )
    assert result.outcome == "rolled_back", result.events
    assert result.reason is not None
    assert result.reason.kind == "quality"
    assert result.reason.at > START + 4 * 60  # not before the bad pairs were scored
    assert "is above the tolerance 0.1" in result.reason.message


def test_a_replay_with_a_shadow_phase_judges_its_pairs_there() -> None:
    shadow = {"duration": "10m", "promoteOn": {"metric": "kpi", "above": 0.5, "for": "2m"}}
    spec = model_canary(base=BASE, shadow=shadow)
    pairs = recorded_pairs([page([0.2] * 200)])
    result = simulate(spec, StaticProvider({KPI: 1.0}), START, START + 3600, pairs=pairs)
    assert result.outcome == "rolled_back", result.events
    assert result.reason is not None
    assert result.reason.kind == "quality"
    assert result.reason.step == 0  # in the shadow phase, before any step
    assert not any(e.type == "StepStarted" for e in result.events)


def test_no_pairs_pause_as_a_pairer_that_cannot_be_read_does() -> None:
    """Without ``--pairs`` the judge's reads fail as an unreachable pairer's do: step 1 runs,
    and ``analysis.errorLimit`` failed reads (5) in a row pause it, with the reason."""
    result = simulate(model_canary(base=BASE), StaticProvider({KPI: 1.0}), START, START + 3600)
    assert result.outcome == "paused", result.events
    assert result.reason is not None
    assert NO_PAIRS in result.reason.message
    quality = result.quality_json()
    assert quality is not None
    assert quality["error"] == NO_PAIRS
    assert quality["pairs"] == 0


def test_undecided_pairs_hold_the_step_before_the_last_and_say_why() -> None:
    pairs = recorded_pairs([page([1.0, 0.9, 0.85])])  # too few to decide either way
    result = simulate(
        model_canary(base=BASE), StaticProvider({KPI: 1.0}), START, START + 3600, pairs=pairs
    )
    assert result.outcome == "in_progress", result.events
    assert result.state.step == 2
    why = result.why()
    assert why is not None
    assert why.startswith("still at step 2 (weight 50%) when the replay ended: step 2 is due")
    assert "waits for quality: the candidate's mean disagreement" in why, why


def test_a_canary_without_quality_has_no_reading() -> None:
    result = simulate(model_canary(base=SMALL), StaticProvider({}), START, START + 60)
    assert result.quality_json() is None
    assert result.to_json()["quality"] is None


def test_overlapping_pages_and_epochs_count_each_pair_once_in_time_order() -> None:
    first = page([1.0] * 10)
    again = page([1.0] * 10, first=5)  # pairs 5..14: 5..10 again
    restarted = page([0.5] * 3, epoch="e2", every=1.0)  # a restarted pairer: seq from 1
    recorded = recorded_pairs([first, "", again, restarted])
    assert len(recorded.pairs) == 14 + 3
    times = [p["at"] for p in recorded.pairs]
    assert times == sorted(times)
    answered = recorded.page(0, START + 6.0)  # 3 of e2 (1, 2, 3 s) and e1's pair 1 (5 s)
    assert [p["seq"] for p in answered["pairs"]] == [1, 2, 3, 4]
    assert answered["last"] == 4
    assert answered["lost"] == 0
    assert answered["after"] == 0
    assert recorded.page(4, START + 6.0)["pairs"] == []
    assert recorded.page(4, START + 10.0)["pairs"][0]["seq"] == 5


def test_a_page_holds_what_the_controller_asks_for() -> None:
    """The controller asks a pairer for up to 10,000 pairs a read (``controller.pairs.PAGE``):
    a replayed page holds as many, so a replay reads pairs as fast as the controller."""
    assert PAGE_LIMIT == PAGE
    pair = {"at": START, "kl": 0.0, "agreement": 1.0}
    recorded = RecordedPairs(tuple(pair for _ in range(PAGE + 500)))
    assert len(recorded.page(0, START)["pairs"]) == PAGE
    assert recorded.page(PAGE, START)["pairs"][0]["seq"] == PAGE + 1


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("not json", "2: not JSON"),
        ("[1, 2]", "2: a line is a page of the pairer"),
        (
            '{"epoch": "e", "after": 0, "lost": 0, "pairs": [{"seq": 1, "kl": 0, "agreement": 2}]}',
            "2: the pairer's page: pair 1's agreement 2 is outside [0, 1]",
        ),
        (
            '{"epoch": "e", "after": 0, "lost": 0, "pairs": [{"seq": 1, "kl": 0, "agreement": 1}]}',
            "2: pair 1 has no time it was scored (at)",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, said: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(page([1.0]) + "\n" + line + "\n")
    with pytest.raises(UsageError) as caught:
        load_pairs(str(path))
    assert str(caught.value).startswith(f"{path}:{said}"), caught.value


def test_the_cli_refuses_pairs_for_a_canary_without_quality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pairs = tmp_path / "canary.yml", tmp_path / "pairs.jsonl"
    spec.write_text(yaml.safe_dump(canary_dict(base=BASE, quality=None)))
    pairs.write_text(page([1.0]) + "\n")
    code = cli(
        [
            "simulate",
            str(spec),
            "--prometheus",
            "http://127.0.0.1:9",
            "--start",
            "0",
            "--end",
            "60",
            "--pairs",
            str(pairs),
        ]
    )
    assert code != 0
    assert "--pairs: demo has no spec.quality to judge them" in capsys.readouterr().err
