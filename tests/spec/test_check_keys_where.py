"""``check_keys.where``: the place of a check in words (issue #41: no index paths for people)."""

from __future__ import annotations

from controlplane.spec import check_keys


def test_where() -> None:
    assert check_keys.where("steps[1].rollbackOn[0]") == "step 2"
    assert check_keys.where("shadow.promoteOn") == "shadow"
    assert check_keys.where("shadow.rollbackOn[2]") == "shadow"
    assert check_keys.where("nonsense") == "nonsense"
