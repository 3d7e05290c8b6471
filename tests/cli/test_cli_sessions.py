"""``kubectl canary get`` with ``spec.traffic.session``: where sessions go at the weight in
effect, and how the sequential judge weighs their requests."""

from __future__ import annotations

import io
from typing import Any

import pytest
from support.canaries import canary_dict
from support.cli import plain_console

from controlplane.cli.live import render
from controlplane.view.canary import SessionsView, snapshot

NOW = 1_800_000_000.0


def traffic(session: Any) -> dict[str, Any]:
    return {
        "router": "gateway-api",
        "gateway": {"name": "inference-gateway", "namespace": "gateways"},
        "session": session,
    }


def test_get_shows_the_candidate_s_session_buckets_and_the_judge_s_weighing() -> None:
    obj = canary_dict(
        traffic=traffic({"header": "x-session-id", "turns": 6}),
        status={"phase": "progressing", "stage": "steps", "step": 1, "weight": 5},
    )
    view = snapshot(obj)
    assert view.sessions == SessionsView("header x-session-id", 6.0)
    out = io.StringIO()
    console = plain_console(out)
    console.width = 400
    console.print(render(view, NOW))
    text = out.getvalue()
    assert (
        "by header x-session-id: the candidate holds 13 of 256 session buckets (5.1% of "
        "sessions), the stable 243; 6 turns a conversation: the sequential judge weighs 11 "
        "requests as one sample"
    ) in text


@pytest.mark.parametrize(
    ("status", "held"),
    [
        ({"phase": "promoted", "stage": "done", "weight": 100}, 256),
        ({"phase": "rolled_back", "stage": "done", "weight": 0}, 0),
        ({"phase": "progressing", "stage": "steps", "step": 2, "weight": 25}, 64),
    ],
)
def test_the_buckets_follow_the_weight_in_effect(status: dict[str, Any], held: int) -> None:
    view = snapshot(canary_dict(traffic=traffic({"cookie": "sid"}), status=status))
    assert view.sessions is not None
    weight, _ = view.set_weight()
    line = view.sessions.line(weight)
    assert line.startswith(f"by cookie sid: the candidate holds {held} of 256"), line
    assert line.endswith("sessions weighed as requests (no turns given)"), line


def test_no_or_unreadable_session_no_sessions_view() -> None:
    assert snapshot(canary_dict(status={"phase": "progressing"})).sessions is None
    assert snapshot(canary_dict(traffic=traffic("x-session-id"), status={})).sessions is None
    assert snapshot(canary_dict(traffic=traffic({"header": 7}), status={})).sessions is None
