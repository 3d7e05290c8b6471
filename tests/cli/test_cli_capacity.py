"""``kubectl canary get`` with ``status.capacity``: the line it shows, and the time it converts."""

from __future__ import annotations

from support.canaries import canary_dict

from controlplane.cli.output import shown
from controlplane.view.canary import snapshot

RECORD = {
    "planned": {"stable": 1, "candidate": 2},
    "ready": {"stable": 2, "candidate": 2},
    "gpus": 4,
    "budget": 4,
    "gpuHours": 41.25,
    "at": 1_800_000_000.0,
}


def test_get_shows_ready_against_planned_replicas_and_gpu_hours() -> None:
    obj = canary_dict(status={"phase": "progressing", "capacity": RECORD})
    view = snapshot(obj)
    assert view.capacity is not None
    assert view.capacity.line() == (
        "stable 2 ready of 1 planned, candidate 2 ready of 2 planned; "
        "4 GPUs held of a budget of 4; 41.2 GPU-hours since the rollout began"
    )
    # the record's hours are those up to its time; its 4 GPUs are held since
    later = view.capacity.line(RECORD["at"] + 1800)
    assert later.endswith("; 43.2 GPU-hours since the rollout began")


def test_no_capacity_record_no_capacity_view() -> None:
    assert snapshot(canary_dict(status={"phase": "progressing"})).capacity is None
    broken = canary_dict(status={"capacity": {"planned": "x"}})
    assert snapshot(broken).capacity is None  # unreadable: not shown, never a traceback


def test_output_converts_the_records_time() -> None:
    obj = canary_dict(status={"capacity": RECORD})
    assert shown(obj)["status"]["capacity"]["at"] == "2027-01-15T08:00:00Z"
