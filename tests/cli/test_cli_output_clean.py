"""``-o json|yaml`` of ``get`` and ``list`` print the object as ``kubectl neat`` would: without
``metadata.managedFields`` and the ``kubectl.kubernetes.io/last-applied-configuration``
annotation, everything else kept. The controller stores the status's times as RFC 3339, read
back exactly; a status written by an older controller (unix seconds) is printed as RFC 3339 too."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from ruamel.yaml import YAML
from support.canaries import canary_dict
from support.cli import RunCli
from support.cli_rollouts import NAME, NS, SCENARIOS, T0, Clock, scenario

from controlplane.cli.output import LAST_APPLIED, shown, status_times
from controlplane.kube.client import canary_ref
from controlplane.rollout.state import RolloutState
from controlplane.spec.units import time_value
from harness.kube.fake import FakeKube

MANAGED = [
    {
        "manager": "kubectl-client-side-apply",
        "operation": "Update",
        "apiVersion": "canary.controlplane.dev/v1alpha1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {}},
    }
]


def _applied(kube: FakeKube, **annotations: str) -> None:
    data = canary_dict(
        NAME,
        NS,
        metadata={
            "annotations": {LAST_APPLIED: '{"apiVersion":"x"}', **annotations},
            "labels": {"team": "support"},
        },
    )
    data["metadata"]["managedFields"] = MANAGED
    kube.create(data)


def _parse(text: str, fmt: str) -> Any:
    return json.loads(text) if fmt == "json" else YAML(typ="safe").load(text)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_get_prints_the_object_without_bookkeeping(
    fmt: str, kube: FakeKube, run_cli: RunCli
) -> None:
    _applied(kube, owner="alice")
    result = run_cli("get", NAME, "-n", NS, "-o", fmt)
    assert result.code == 0, result.err
    assert "managedFields" not in result.out
    assert LAST_APPLIED not in result.out
    meta = _parse(result.out, fmt)["metadata"]
    assert meta["annotations"] == {"owner": "alice"}
    assert meta["labels"] == {"team": "support"}
    assert (meta["name"], meta["namespace"]) == (NAME, NS)
    assert "managedFields" in kube.get(canary_ref(NS, NAME))["metadata"]  # stored as it was


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_prints_the_items_without_bookkeeping(
    fmt: str, kube: FakeKube, run_cli: RunCli
) -> None:
    _applied(kube)
    result = run_cli("list", "-n", NS, "-o", fmt)
    assert result.code == 0, result.err
    assert "managedFields" not in result.out
    assert LAST_APPLIED not in result.out
    (item,) = _parse(result.out, fmt)["items"]
    assert "annotations" not in item["metadata"]  # nothing else was in it
    assert item["spec"] == canary_dict(NAME, NS)["spec"]


def test_shown_keeps_everything_else_and_leaves_the_object_alone() -> None:
    obj = canary_dict(NAME, NS, metadata={"annotations": {LAST_APPLIED: "{}", "a": "b"}})
    obj["metadata"]["managedFields"] = MANAGED
    before = json.loads(json.dumps(obj))
    out = shown(obj)
    assert obj == before
    expected = json.loads(json.dumps(obj))
    del expected["metadata"]["managedFields"]
    expected["metadata"]["annotations"] = {"a": "b"}
    assert out == expected


# --------------------------------------------------------------------------- times as RFC 3339

EPOCH = re.compile(r"\b1[0-9]{9}(\.[0-9]+)?\b")  # a unix time of 2001-2286


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TOP_TIMES = ("startedAt", "stageStartedAt", "lastEvaluation", "pausedAt", "lastIntentAt")


@pytest.mark.parametrize("case", SCENARIOS)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_get_prints_the_status_times_as_rfc3339(
    case: str, fmt: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario(case, kube, clock)
    stored = kube.get(canary_ref(NS, NAME)).get("status") or {}
    result = run_cli("get", NAME, "-n", NS, "-o", fmt)
    assert result.code == 0, result.err
    assert not EPOCH.search(result.out), EPOCH.search(result.out)
    status = _parse(result.out, fmt).get("status") or {}
    for key in TOP_TIMES:
        if stored.get(key) is not None:
            assert RFC3339.fullmatch(status[key]), status[key]
            assert status[key] == stored[key]
    if stored.get("history"):
        assert [e["time"] for e in status["history"]] == [e["time"] for e in stored["history"]]


@pytest.mark.parametrize("case", SCENARIOS)
def test_the_stored_status_times_are_rfc3339_and_read_back_exactly(
    case: str, kube: FakeKube, clock: Clock
) -> None:
    scenario(case, kube, clock)
    stored = kube.get(canary_ref(NS, NAME)).get("status") or {}
    times = [stored[k] for k in TOP_TIMES if stored.get(k) is not None]
    times += [e["time"] for e in stored.get("history") or []]
    for check in (stored.get("checks") or {}).values():
        times += [check["at"], *(r["at"] for r in check.get("recent") or [])]
    times += [w["at"] for w in stored.get("warnings") or []]
    if case not in ("new", "invalid"):  # no status yet; a spec refused before any rollout
        assert times, "the scenario wrote no times"
    for stamp in times:
        assert isinstance(stamp, str), stamp
        assert RFC3339.fullmatch(stamp), stamp
    if "specHash" in stored:
        state = RolloutState.from_status(stored)
        assert state.started_at == time_value(stored["startedAt"])
        assert RolloutState.from_status(state.to_status()) == state


def test_a_status_of_unix_seconds_from_an_older_controller_is_read() -> None:
    state = RolloutState(spec_hash="h", stage="steps", started_at=T0 + 0.125, stage_started_at=T0)
    old = state.to_status()
    old["startedAt"], old["stageStartedAt"] = T0 + 0.125, T0
    assert RolloutState.from_status(old) == state
    assert old["startedAt"] != state.to_status()["startedAt"]  # rewritten as RFC 3339


def test_every_time_of_a_full_status_is_converted() -> None:
    t = T0 + 0.25
    status = {
        "startedAt": T0,
        "stageStartedAt": T0,
        "lastEvaluation": T0,
        "pausedAt": T0,
        "lastIntentAt": t,
        "reason": {"at": T0, "message": "m"},
        "history": [{"time": T0, "type": "StepStarted"}],
        "checks": {
            "steps[0].rollbackOn[0]": {
                "at": T0,
                "since": T0,
                "value": 1.0,
                "recent": [{"at": T0, "verdict": "pass", "value": 1.0}],
            }
        },
        "lastChecks": [{"at": T0, "since": None, "value": 0.5}],
        "gates": {"g@step-1": {"submittedAt": T0, "startedAt": T0, "finishedAt": None}},
        "controller": {"finishedAt": T0, "verified": {"at": T0, "weight": 5}},
        "warnings": [{"type": "AlertDeliveryFailed", "message": "m", "at": T0, "count": 1}],
        "observedGeneration": 3,
        "spend": 12.5,
    }
    out = status_times(status)
    text = json.dumps(out)
    assert not EPOCH.search(text), text
    assert out["lastIntentAt"] == "2026-09-21T14:13:20.250000Z"
    assert out["history"][0]["time"] == "2026-09-21T14:13:20Z"
    assert (out["observedGeneration"], out["spend"]) == (3, 12.5)
    assert out["checks"]["steps[0].rollbackOn[0]"]["value"] == 1.0
    assert status["startedAt"] == T0  # a copy


def test_garbage_times_are_left_as_they_are() -> None:
    status = {"startedAt": 1e300, "pausedAt": "noon", "history": [1, {"time": True}]}
    assert status_times(status) == status
    assert status_times("nonsense") == "nonsense"
