"""The one event record (rollout/events.py): the fingerprint every sink identifies an event by,
the per-sink delivery key, the delivered record, and the status cursor that never skips an
entry and never tells one twice."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as hs

from controlplane.rollout import events
from controlplane.rollout.state import Event, RolloutState

T0 = 1_795_370_400.0
EVENT = Event("RolledBack", T0, 1, 0, "latency 412.3ms > 300ms")


def test_the_fingerprint_names_the_resource_and_the_whole_event() -> None:
    one = events.fingerprint("uid-1", EVENT)
    assert len(one) == 24
    int(one, 16)
    assert events.fingerprint("uid-1", EVENT) == one
    assert events.fingerprint("uid-2", EVENT) != one  # a re-created canary of the same name
    assert events.fingerprint("uid-1", replace(EVENT, type="Paused")) != one
    assert events.fingerprint("uid-1", replace(EVENT, time=T0 + 1)) != one
    assert events.fingerprint("uid-1", replace(EVENT, step=2)) != one
    # two checks breached at one evaluation are two events
    assert events.fingerprint("uid-1", replace(EVENT, message="errors 2% > 1%")) != one
    assert events.fingerprint("uid-1", replace(EVENT, weight=5)) == one


def test_the_fingerprint_survives_the_status_round_trip() -> None:
    """The API server hands ``1795370400.0`` back as ``1795370400``."""
    state = RolloutState("h", "rolled_back", T0, T0, history=(EVENT,))
    back = RolloutState.from_status(json.loads(json.dumps(state.to_status()).replace(".0,", ",")))
    assert events.fingerprint("uid-1", back.history[0]) == events.fingerprint("uid-1", EVENT)
    assert events.fingerprint("uid-1", replace(EVENT, time=int(T0))) == events.fingerprint(
        "uid-1", EVENT
    )


def test_owner_is_the_uid_else_the_name() -> None:
    assert events.owner_id("ns", "c", "uid-1") == "uid-1"
    assert events.owner_id("ns", "c", None) == "ns/c"


def test_one_delivery_key_per_event_and_sink() -> None:
    fp = events.fingerprint("uid-1", EVENT)
    sinks = [events.KUBE_EVENTS, events.METRICS, events.WRITE_BACK, "webhook:https://h/x"]
    keys = {events.delivery_key(fp, sink) for sink in sinks}
    assert len(keys) == len(sinks)
    assert all(len(k) == 32 for k in keys)
    # the alert ledger's ConfigMaps written before keep their meaning: (fingerprint, channel)
    channel = "slack:slack-hook/url#"
    expected = hashlib.sha256(f"{fp}|{channel}".encode()).hexdigest()[:32]
    assert events.delivery_key(fp, channel) == expected


def test_delivered_record_window_limit_and_release() -> None:
    record = events.Delivered(window_s=100.0, limit=3)
    record = record.with_key("a", 0.0).with_key("b", 10.0)
    assert record.has("a")
    assert record.has("a", 100.0)
    assert not record.has("a", 100.5)  # out of the window
    assert not record.has("c")
    # expired entries go when a new one comes; the newest `limit` are kept
    later = record.with_key("c", 105.0)
    assert set(later.at) == {"b", "c"}
    full = later.with_key("d", 106.0).with_key("e", 107.0)
    assert set(full.at) == {"c", "d", "e"}
    assert not full.without("d").has("d")
    assert full.only(["d", "x"]).at == {"d": 106.0}
    assert record.has("a")  # immutable: the old record is unchanged


def test_delivered_record_as_configmap_data() -> None:
    record = events.Delivered(window_s=None).with_key("k1", T0).with_key("k2", T0 + 0.25)
    data = record.to_data()
    assert data == {"k1": repr(T0), "k2": repr(T0 + 0.25)}
    back = events.Delivered.from_data({**data, "bad": "soon", "inf": "inf"}, window_s=60.0)
    assert back.at == record.at
    assert back.window_s == 60.0
    assert events.Delivered.from_data(None).at == {}


@settings(max_examples=200, deadline=None)
@given(
    n=hs.integers(0, 30),
    told=hs.integers(0, 30),
    dropped=hs.integers(0, 10),
    same_time=hs.booleans(),
)
def test_the_cursor_never_skips_and_never_repeats(
    n: int, told: int, dropped: int, same_time: bool
) -> None:
    """Tell the first ``told`` entries, persist the cursor, let the bounded history drop the
    oldest ``dropped`` and the machine append more: what is left to tell is exactly the rest,
    unless the cursor itself was dropped (then everything again: twice, never skipped)."""
    times = [T0 if same_time else T0 + i for i in range(n + 10)]
    history = [Event("Breached", times[i], 1, 5, f"check {i}") for i in range(n + 10)]
    told = min(told, n)
    cursor = events.cursor(history[:told], "uid-1", None)
    now = history[dropped : n + 10]
    left = events.undelivered(now, cursor, "uid-1")
    if told == 0:
        assert left == now
    elif told - 1 >= dropped:
        assert left == history[told : n + 10]
    else:
        assert left == now
    assert events.cursor([], "uid-1", cursor) == cursor


def test_log_line_is_one_readable_line() -> None:
    event = Event("RolledBack", 0.0, 1, 0, "latency 412.3ms > 300ms\nover 5m at step 1")
    assert events.log_line("ml", "c", event) == (
        "ml/c: RolledBack at step 1, weight 0%: latency 412.3ms > 300ms over 5m at step 1"
    )
    assert events.log_line("ml", "c", Event("ShadowStarted", 0.0, 0, 0, "")) == (
        "ml/c: ShadowStarted before step 1, weight 0%"
    )
