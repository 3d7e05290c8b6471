"""``status.warnings``: trouble beside the rollout (an alert not delivered), kept by the
controller's own status writes while the same spec rolls out, bounded and deduplicated."""

from __future__ import annotations

from controlplane.rollout.state import RolloutState
from controlplane.status.document import (
    NO_TRAFFIC,
    Book,
    rollout_status,
    with_trouble,
    with_warning,
)

STATE = RolloutState(spec_hash="h1", stage="steps", started_at=0, stage_started_at=0, step_index=0)


def test_the_same_warning_is_counted_and_the_newest_kept() -> None:
    warnings = with_warning(None, "AlertDeliveryFailed", "a", 1.0)
    warnings = with_warning(warnings, "AlertDeliveryFailed", "b", 2.0)
    warnings = with_warning(warnings, "AlertDeliveryFailed", "a", 3.0)
    assert warnings == [
        {"type": "AlertDeliveryFailed", "message": "b", "at": "1970-01-01T00:00:02Z", "count": 1},
        {"type": "AlertDeliveryFailed", "message": "a", "at": "1970-01-01T00:00:03Z", "count": 2},
    ]
    for i in range(10):
        warnings = with_warning(warnings, "AlertDeliveryFailed", str(i), 10.0 + i, kept=5)
    assert [w["message"] for w in warnings] == ["5", "6", "7", "8", "9"]
    assert with_warning("junk", "X", "m", 1.0) == [
        {"type": "X", "message": "m", "at": "1970-01-01T00:00:01Z", "count": 1}
    ]


def test_the_controller_keeps_them_for_the_same_spec_only() -> None:
    previous = rollout_status(STATE, Book(), 1, None, 0.0)
    previous["warnings"] = with_warning(None, "AlertDeliveryFailed", "slack: no Secret", 5.0)
    kept = rollout_status(STATE, Book(), 1, previous, 10.0)
    assert kept["warnings"] == previous["warnings"]
    new_spec = RolloutState(spec_hash="h2", stage="pending", started_at=20, stage_started_at=20)
    assert "warnings" not in rollout_status(new_spec, Book(), 2, previous, 20.0)


def test_no_traffic_goes_with_the_outcome_and_other_warnings_stay() -> None:
    previous = rollout_status(STATE, Book(), 1, None, 0.0)
    previous["warnings"] = with_warning(None, "AlertDeliveryFailed", "slack: no Secret", 5.0)
    previous["warnings"] = with_warning(previous["warnings"], NO_TRAFFIC, "no request", 6.0)
    assert len(rollout_status(STATE, Book(), 1, previous, 10.0)["warnings"]) == 2
    ended = RolloutState(spec_hash="h1", stage="rolled_back", started_at=0, stage_started_at=9)
    kept = rollout_status(ended, Book(), 1, previous, 10.0)["warnings"]
    assert [w["type"] for w in kept] == ["AlertDeliveryFailed"]


def test_trouble_is_current_and_leaves_other_warnings_alone() -> None:
    alert = with_warning(None, "AlertDeliveryFailed", "slack: no Secret", 1.0)
    status = {"warnings": alert}
    troubled = with_trouble(status, {"WeightsNotVerified": "never converges"}, 2.0)
    assert [w["type"] for w in troubled["warnings"]] == [
        "AlertDeliveryFailed",
        "WeightsNotVerified",
    ]
    again = with_trouble(troubled, {"WeightsNotVerified": "never converges"}, 3.0)
    assert again == troubled  # nothing new to write
    changed = with_trouble(again, {"WeightsNotVerified": "refused: 0% read back"}, 4.0)
    assert changed["warnings"][-1]["message"] == "refused: 0% read back"
    assert len(changed["warnings"]) == 2
    assert with_trouble(changed, {}, 5.0)["warnings"] == alert
    assert "warnings" not in with_trouble({"warnings": troubled["warnings"][1:]}, {}, 6.0)
