"""FakeKube behaves like kube-apiserver where the product relies on it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import KubeClient, Obj, Ref, WatchEvent, is_expired
from harness.kube.fake import FakeKube
from harness.kube.fake_patch import json_patch, merge_patch

CANARY_API = "canary.controlplane.dev/v1alpha1"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def configmap(name: str = "cfg", ns: str = "default", **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": dict(data) or {"k": "v"},
    }


def canary(name: str = "c1", ns: str = "default", weight: int = 5, **meta: Any) -> Obj:
    return {
        "apiVersion": CANARY_API,
        "kind": "ModelCanary",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"model": {"name": "m"}, "weight": weight},
    }


def ref(obj: Obj) -> Ref:
    return Ref.of(obj)


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube(now=Clock())


def test_is_a_kube_client(kube: FakeKube) -> None:
    client: KubeClient = kube
    assert client.list("v1", "ConfigMap") == []


# --- create / get / list -------------------------------------------------------------------------


def test_create_sets_server_fields(kube: FakeKube) -> None:
    stored = kube.create(canary())
    meta = stored["metadata"]
    assert meta["generation"] == 1
    assert meta["uid"]
    assert meta["creationTimestamp"] == "2027-01-15T08:00:00Z"
    assert int(meta["resourceVersion"]) > 0
    assert kube.get(ref(stored)) == stored


def test_create_twice_conflicts_already_exists(kube: FakeKube) -> None:
    kube.create(configmap())
    with pytest.raises(Conflict, match="AlreadyExists"):
        kube.create(configmap())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda o: o["metadata"].pop("name"), "no metadata.name", id="no-name"),
        pytest.param(lambda o: o.pop("kind"), "no kind", id="no-kind"),
        pytest.param(
            lambda o: o["metadata"].update(name="Bad_Name"), "RFC 1123", id="uppercase-name"
        ),
        pytest.param(
            lambda o: o["metadata"].update(resourceVersion="5"),
            "resourceVersion should not be set",
            id="rv-on-create",
        ),
        pytest.param(lambda o: o["metadata"].pop("namespace"), "namespaced", id="no-namespace"),
        pytest.param(
            lambda o: o["metadata"].update(labels={"a": 1}), "must be strings", id="int-label"
        ),
        pytest.param(lambda o: o.update(data={"when": object()}), "JSON", id="not-json"),
    ],
)
def test_create_rejects_bad_objects(
    kube: FakeKube, mutate: Callable[[Obj], object], message: str
) -> None:
    obj = configmap()
    mutate(obj)
    with pytest.raises(KubeError, match=message):
        kube.create(obj)
    assert kube.list("v1", "ConfigMap") == []


def test_generate_name(kube: FakeKube) -> None:
    obj = configmap()
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "cfg-"
    stored = kube.create(obj)
    assert stored["metadata"]["name"].startswith("cfg-")
    assert len(stored["metadata"]["name"]) == len("cfg-") + 5


def test_get_missing_is_not_found(kube: FakeKube) -> None:
    with pytest.raises(NotFound):
        kube.get(Ref("v1", "ConfigMap", "default", "nope"))


def test_cluster_scoped_kinds_ignore_namespace(kube: FakeKube) -> None:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    assert kube.get(Ref("v1", "Namespace", None, "team-a"))["metadata"]["name"] == "team-a"
    assert len(kube.list("v1", "Namespace", namespace="whatever")) == 1


@pytest.mark.parametrize(
    ("namespace", "selector", "expected"),
    [
        pytest.param(None, None, ["a/x", "a/y", "b/x"], id="all-namespaces"),
        pytest.param("a", None, ["a/x", "a/y"], id="one-namespace"),
        pytest.param(None, {"tier": "gold"}, ["a/x", "b/x"], id="selector"),
        pytest.param(None, {"tier": "gold", "zone": "1"}, ["b/x"], id="selector-two-labels"),
        pytest.param("a", {"tier": "none"}, [], id="selector-no-match"),
    ],
)
def test_list_filters_and_sorts(
    kube: FakeKube, namespace: str | None, selector: dict[str, str] | None, expected: list[str]
) -> None:
    for ns, name, labels in [
        ("b", "x", {"tier": "gold", "zone": "1"}),
        ("a", "y", {"tier": "silver"}),
        ("a", "x", {"tier": "gold"}),
    ]:
        obj = configmap(name, ns)
        obj["metadata"]["labels"] = labels
        kube.create(obj)
    kube.create(canary("x", "a"))  # another kind never shows up
    found = kube.list("v1", "ConfigMap", namespace, selector)
    assert [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in found] == expected


# --- copies --------------------------------------------------------------------------------------


def test_callers_cannot_mutate_stored_state(kube: FakeKube) -> None:
    obj = configmap()
    stored = kube.create(obj)
    obj["data"]["k"] = "changed-input"
    stored["data"]["k"] = "changed-output"
    got = kube.get(ref(stored))
    got["data"]["k"] = "changed-get"
    kube.list("v1", "ConfigMap")[0]["data"]["k"] = "changed-list"
    assert kube.get(ref(stored))["data"] == {"k": "v"}


# --- replace, generation, status subresource -----------------------------------------------------


def test_replace_with_stale_resource_version_conflicts(kube: FakeKube) -> None:
    first = kube.create(configmap())
    second = kube.replace({**first, "data": {"k": "2"}})
    with pytest.raises(Conflict):
        kube.replace({**first, "data": {"k": "3"}})
    assert kube.get(ref(first))["data"] == {"k": "2"}
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_replace_without_resource_version_is_unconditional(kube: FakeKube) -> None:
    stored = kube.create(configmap())
    obj = configmap(k="2")
    assert kube.replace(obj)["metadata"]["uid"] == stored["metadata"]["uid"]


def test_replace_missing_is_not_found(kube: FakeKube) -> None:
    with pytest.raises(NotFound):
        kube.replace(configmap())


def _set_weight(o: Obj) -> None:
    o["spec"]["weight"] = 50


def _set_label(o: Obj) -> None:
    o["metadata"].setdefault("labels", {})["x"] = "y"


def _set_annotation(o: Obj) -> None:
    o["metadata"].setdefault("annotations", {})["note"] = "hi"


def _set_status(o: Obj) -> None:
    o["status"] = {"phase": "Progressing"}


def _touch_server_fields(o: Obj) -> None:
    o["metadata"]["uid"] = "forged"
    o["metadata"]["generation"] = 99
    o["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("change", "generation", "new_rv"),
    [
        pytest.param(_set_weight, 2, True, id="spec-bumps-generation"),
        pytest.param(_set_label, 1, True, id="label-keeps-generation"),
        pytest.param(_set_annotation, 1, True, id="annotation-keeps-generation"),
        pytest.param(_set_status, 1, False, id="status-ignored-by-main-resource"),
        pytest.param(_touch_server_fields, 1, False, id="server-fields-ignored"),
        pytest.param(lambda o: None, 1, False, id="no-op-keeps-resource-version"),
    ],
)
def test_replace_generation_rules(
    kube: FakeKube, change: Callable[[Obj], None], generation: int, new_rv: bool
) -> None:
    stored = kube.create(canary())
    obj = kube.get(ref(stored))
    change(obj)
    after = kube.replace(obj)
    assert after["metadata"]["generation"] == generation
    assert (after["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]) is new_rv
    assert "status" not in after
    assert after["metadata"]["uid"] == stored["metadata"]["uid"]


def test_status_only_in_body_dropped_on_create_for_status_kinds(kube: FakeKube) -> None:
    obj = canary()
    obj["status"] = {"phase": "Promoted"}
    assert "status" not in kube.create(obj)
    cm = configmap()
    cm["status"] = {"free": "form"}  # no status subresource: kept like any field
    assert kube.create(cm)["status"] == {"free": "form"}


def test_replace_status_changes_only_status(kube: FakeKube) -> None:
    stored = kube.create(canary())
    obj = kube.get(ref(stored))
    obj["status"] = {"phase": "Progressing", "observedGeneration": 1}
    obj["spec"]["weight"] = 99  # ignored by the status subresource
    obj["metadata"]["labels"] = {"ignored": "yes"}
    after = kube.replace_status(obj)
    assert after["status"] == {"phase": "Progressing", "observedGeneration": 1}
    assert after["spec"]["weight"] == 5
    assert "labels" not in after["metadata"]
    assert after["metadata"]["generation"] == 1
    # and the main resource keeps the status it did not write
    again = kube.get(ref(stored))
    again["spec"]["weight"] = 25
    assert kube.replace(again)["status"]["phase"] == "Progressing"


def test_replace_status_checks_resource_version(kube: FakeKube) -> None:
    stored = kube.create(canary())
    kube.replace_status({**stored, "status": {"phase": "A"}})
    with pytest.raises(Conflict):
        kube.replace_status({**stored, "status": {"phase": "B"}})


def test_replace_status_needs_a_status_subresource(kube: FakeKube) -> None:
    stored = kube.create(configmap())
    with pytest.raises(NotFound, match="status subresource"):
        kube.replace_status({**stored, "status": {}})
    kube.register_status_subresource("ConfigMap")
    assert kube.replace_status({**stored, "status": {"x": "1"}})["status"] == {"x": "1"}


# --- patch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        pytest.param({"a": 1}, {"a": 2}, {"a": 2}, id="replace-scalar"),
        pytest.param({"a": 1, "b": 2}, {"a": None}, {"b": 2}, id="null-deletes"),
        pytest.param({"a": {"b": 1, "c": 2}}, {"a": {"b": 9}}, {"a": {"b": 9, "c": 2}}, id="deep"),
        pytest.param({"a": [1, 2]}, {"a": [3]}, {"a": [3]}, id="lists-replace"),
        pytest.param({"a": 1}, {"b": {"c": None}}, {"a": 1, "b": {}}, id="null-in-new-object"),
        pytest.param({"a": {"b": 1}}, {"a": 5}, {"a": 5}, id="object-to-scalar"),
    ],
)
def test_merge_patch_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


@pytest.mark.parametrize(
    ("doc", "ops", "expected"),
    [
        pytest.param(
            {"a": 1}, [{"op": "add", "path": "/b", "value": 2}], {"a": 1, "b": 2}, id="add"
        ),
        pytest.param(
            {"l": [1, 3]},
            [{"op": "add", "path": "/l/1", "value": 2}],
            {"l": [1, 2, 3]},
            id="insert",
        ),
        pytest.param(
            {"l": [1]}, [{"op": "add", "path": "/l/-", "value": 2}], {"l": [1, 2]}, id="append"
        ),
        pytest.param({"a": 1, "b": 2}, [{"op": "remove", "path": "/a"}], {"b": 2}, id="remove"),
        pytest.param(
            {"a": 1}, [{"op": "replace", "path": "/a", "value": 3}], {"a": 3}, id="replace"
        ),
        pytest.param({"a": 1}, [{"op": "move", "from": "/a", "path": "/b"}], {"b": 1}, id="move"),
        pytest.param(
            {"a": [1]},
            [{"op": "copy", "from": "/a", "path": "/b"}],
            {"a": [1], "b": [1]},
            id="copy",
        ),
        pytest.param(
            {"a/b": 1, "c~d": 2},
            [{"op": "remove", "path": "/a~1b"}, {"op": "remove", "path": "/c~0d"}],
            {},
            id="escapes",
        ),
        pytest.param(
            {"a": 1},
            [{"op": "test", "path": "/a", "value": 1}, {"op": "replace", "path": "/a", "value": 2}],
            {"a": 2},
            id="test-passes",
        ),
    ],
)
def test_json_patch_rfc6902(doc: Any, ops: list[Obj], expected: Any) -> None:
    before = json.loads(json.dumps(doc))
    assert json_patch(doc, ops) == expected
    assert doc == before  # the input is not modified in place


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param([{"op": "test", "path": "/a", "value": 2}], id="test-fails"),
        pytest.param([{"op": "remove", "path": "/zz"}], id="remove-missing"),
        pytest.param([{"op": "replace", "path": "/zz", "value": 1}], id="replace-missing"),
        pytest.param([{"op": "add", "path": "/x/y", "value": 1}], id="add-no-parent"),
        pytest.param([{"op": "add", "path": "/l/5", "value": 1}], id="index-out-of-range"),
        pytest.param([{"op": "frobnicate", "path": "/a"}], id="unknown-op"),
        pytest.param([{"op": "add", "path": "a", "value": 1}], id="pointer-no-slash"),
        pytest.param({"op": "add"}, id="not-a-list"),
    ],
)
def test_json_patch_errors(ops: Any) -> None:
    with pytest.raises(KubeError):
        json_patch({"a": 1, "l": [0]}, ops)


def test_patch_merge_on_stored_object(kube: FakeKube) -> None:
    stored = kube.create(canary())
    after = kube.patch(ref(stored), {"spec": {"weight": 10}, "metadata": {"labels": {"a": "b"}}})
    assert after["spec"] == {"model": {"name": "m"}, "weight": 10}
    assert after["metadata"]["labels"] == {"a": "b"}
    assert after["metadata"]["generation"] == 2


def test_patch_json_with_failed_test_changes_nothing(kube: FakeKube) -> None:
    stored = kube.create(canary())
    ops = [
        {"op": "test", "path": "/spec/weight", "value": 7},
        {"op": "replace", "path": "/spec/weight", "value": 50},
    ]
    with pytest.raises(KubeError, match="test failed"):
        kube.patch(ref(stored), ops, kind="json")  # type: ignore[arg-type]
    assert kube.get(ref(stored)) == stored


def test_patch_with_resource_version_is_optimistic(kube: FakeKube) -> None:
    stored = kube.create(canary())
    kube.patch(ref(stored), {"spec": {"weight": 10}})
    stale = {"metadata": {"resourceVersion": stored["metadata"]["resourceVersion"]}}
    with pytest.raises(Conflict):
        kube.patch(ref(stored), {**stale, "spec": {"weight": 20}})


def test_patch_cannot_write_status_or_rename(kube: FakeKube) -> None:
    stored = kube.create(canary())
    assert "status" not in kube.patch(ref(stored), {"status": {"phase": "Promoted"}})
    with pytest.raises(KubeError, match="may not change"):
        kube.patch(ref(stored), {"metadata": {"name": "other"}})
    with pytest.raises(NotFound):
        kube.patch(Ref(CANARY_API, "ModelCanary", "default", "nope"), {"spec": {}})


# --- apply ---------------------------------------------------------------------------------------


def test_apply_creates_then_merges(kube: FakeKube) -> None:
    created = kube.apply(canary(weight=5), field_manager="ctl")
    assert created["metadata"]["generation"] == 1
    kube.patch(ref(created), {"metadata": {"labels": {"by-hand": "yes"}}})
    applied = kube.apply(
        {**canary(weight=25), "metadata": {"name": "c1", "namespace": "default"}},
        field_manager="ctl",
    )
    assert applied["spec"]["weight"] == 25
    assert applied["metadata"]["labels"] == {"by-hand": "yes"}  # not ours: kept
    assert applied["metadata"]["generation"] == 2
    # same config again: a no-op
    again = kube.apply(canary(weight=25), field_manager="ctl")
    assert again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]


def test_apply_removes_fields_the_manager_stopped_applying(kube: FakeKube) -> None:
    first = canary()
    first["spec"]["extra"] = {"shadow": True}
    kube.apply(first, field_manager="ctl")
    other = {**canary(), "spec": {"owned-by-other": 1}}
    kube.apply(other, field_manager="someone-else")
    after = kube.apply(canary(), field_manager="ctl")
    assert "extra" not in after["spec"]
    assert after["spec"]["owned-by-other"] == 1
    assert after["spec"]["weight"] == 5


def test_apply_checks_resource_version_when_given(kube: FakeKube) -> None:
    stored = kube.apply(canary())
    kube.apply(canary(weight=6))
    with pytest.raises(Conflict):
        kube.apply({**canary(weight=7), "metadata": stored["metadata"]})


# --- finalizers and garbage collection -----------------------------------------------------------


def test_delete_without_finalizers_removes(kube: FakeKube) -> None:
    stored = kube.create(configmap())
    kube.delete(ref(stored))
    with pytest.raises(NotFound):
        kube.get(ref(stored))
    with pytest.raises(NotFound):
        kube.delete(ref(stored))


@pytest.mark.parametrize(
    "remove",
    [
        pytest.param("replace", id="replace"),
        pytest.param("merge", id="merge-patch"),
        pytest.param("json", id="json-patch"),
        pytest.param("apply", id="apply"),
    ],
)
def test_finalizers_hold_deletion_until_removed(kube: FakeKube, remove: str) -> None:
    stored = kube.create(canary(finalizers=["canary.controlplane.dev/cleanup", "other/x"]))
    kube.delete(ref(stored))
    marked = kube.get(ref(stored))
    assert marked["metadata"]["deletionTimestamp"] == "2027-01-15T08:00:00Z"
    assert marked["metadata"]["generation"] == 2
    kube.delete(ref(stored))  # deleting again changes nothing
    assert kube.get(ref(stored)) == marked
    kube.patch(ref(stored), {"metadata": {"finalizers": ["other/x"]}})
    assert kube.get(ref(stored))["metadata"]["finalizers"] == ["other/x"]
    if remove == "replace":
        obj = kube.get(ref(stored))
        obj["metadata"]["finalizers"] = []
        kube.replace(obj)
    elif remove == "merge":
        kube.patch(ref(stored), {"metadata": {"finalizers": None}})
    elif remove == "json":
        ops = [{"op": "remove", "path": "/metadata/finalizers"}]
        kube.patch(ref(stored), ops, kind="json")  # type: ignore[arg-type]
    else:
        kube.apply({**canary(), "metadata": {**canary()["metadata"], "finalizers": []}})
    with pytest.raises(NotFound):
        kube.get(ref(stored))


def test_no_new_finalizers_while_deleting(kube: FakeKube) -> None:
    stored = kube.create(canary(finalizers=["a/b"]))
    kube.delete(ref(stored))
    with pytest.raises(KubeError, match="no new finalizers"):
        kube.patch(ref(stored), {"metadata": {"finalizers": ["a/b", "c/d"]}})


def _owned(name: str, owner: Obj, *others: Obj, finalizers: list[str] | None = None) -> Obj:
    obj = configmap(name)
    obj["metadata"]["ownerReferences"] = [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
        }
        for o in (owner, *others)
    ]
    if finalizers:
        obj["metadata"]["finalizers"] = finalizers
    return obj


def test_cascading_delete_collects_dependents(kube: FakeKube) -> None:
    owner = kube.create(canary("owner"))
    other = kube.create(canary("other"))
    child = kube.create(_owned("child", owner))
    grandchild = kube.create(_owned("grandchild", child))
    shared = kube.create(_owned("shared", owner, other))
    held = kube.create(_owned("held", owner, finalizers=["x/y"]))
    unrelated = kube.create(configmap("unrelated"))

    kube.delete(ref(owner))

    names = {o["metadata"]["name"] for o in kube.list("v1", "ConfigMap")}
    assert names == {"shared", "held", "unrelated"}
    assert [o["name"] for o in kube.get(ref(shared))["metadata"]["ownerReferences"]] == ["other"]
    assert "deletionTimestamp" in kube.get(ref(held))["metadata"]
    assert kube.get(ref(unrelated)) == unrelated
    for gone in (child, grandchild):
        with pytest.raises(NotFound):
            kube.get(ref(gone))


def test_owner_with_finalizer_keeps_dependents_until_gone(kube: FakeKube) -> None:
    owner = kube.create(canary("owner", finalizers=["f/g"]))
    child = kube.create(_owned("child", owner))
    kube.delete(ref(owner))
    assert kube.get(ref(child))
    kube.patch(ref(owner), {"metadata": {"finalizers": None}})
    with pytest.raises(NotFound):
        kube.get(ref(child))


# --- watch ---------------------------------------------------------------------------------------


def _types(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.object["metadata"]["name"]) for e in events]


def test_watch_from_resource_version_replays_in_order(kube: FakeKube) -> None:
    start = kube.resource_version
    a = kube.create(configmap("a"))
    kube.create(canary("not-a-configmap"))
    kube.replace({**a, "data": {"k": "2"}})
    kube.create(configmap("b", "elsewhere"))
    kube.delete(ref(a))
    events = list(kube.watch("v1", "ConfigMap", resource_version=start, timeout_s=0.05))
    assert _types(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)
    ns_only = list(kube.watch("v1", "ConfigMap", "elsewhere", start, timeout_s=0.05))
    assert _types(ns_only) == [("ADDED", "b")]


def test_watch_resumes_after_a_resource_version(kube: FakeKube) -> None:
    kube.create(configmap("a"))
    middle = kube.create(configmap("b"))["metadata"]["resourceVersion"]
    kube.create(configmap("c"))
    events = list(kube.watch("v1", "ConfigMap", resource_version=middle, timeout_s=0.05))
    assert _types(events) == [("ADDED", "c")]


def test_watch_without_resource_version_starts_with_current_state(kube: FakeKube) -> None:
    kube.create(configmap("b"))
    a = kube.create(configmap("a"))
    kube.delete(ref(a))
    events = list(kube.watch("v1", "ConfigMap", timeout_s=0.05))
    assert _types(events) == [("ADDED", "b")]


@pytest.mark.parametrize(
    "make_old",
    [
        pytest.param(lambda k: k.compact(), id="compacted"),
        pytest.param(
            lambda k: [k.create(configmap(f"n{i}")) for i in range(5)], id="history-overflow"
        ),
    ],
)
def test_watch_too_old_resource_version_is_410_gone(
    make_old: Callable[[FakeKube], object],
) -> None:
    kube = FakeKube(now=Clock(), history=3)
    old = kube.create(configmap("first"))["metadata"]["resourceVersion"]
    kube.create(configmap("second"))
    make_old(kube)
    stream = kube.watch("v1", "ConfigMap", resource_version=str(int(old) - 1))
    with pytest.raises(KubeError, match="410 Gone") as caught:
        next(iter(stream))  # on the first read, as kube-apiserver's ERROR event
    assert is_expired(caught.value)
    # relist, then watch from the newest version works
    latest = kube.resource_version
    assert list(kube.watch("v1", "ConfigMap", resource_version=latest, timeout_s=0.01)) == []


def test_slow_watcher_overtaken_by_compaction_gets_410(kube: FakeKube) -> None:
    start = kube.resource_version
    kube.create(configmap("a"))
    stream = kube.watch("v1", "ConfigMap", resource_version=start, timeout_s=1)
    assert next(stream).type == "ADDED"
    kube.create(configmap("b"))
    kube.compact()
    with pytest.raises(KubeError, match="410"):
        next(stream)


def _collect(stream: Iterator[WatchEvent], into: list[WatchEvent]) -> threading.Thread:
    def run() -> None:
        into.extend(stream)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_watch_blocks_for_new_events_with_many_watchers(kube: FakeKube) -> None:
    start = kube.resource_version
    seen: list[list[WatchEvent]] = [[], [], []]
    threads = [
        _collect(kube.watch("v1", "ConfigMap", resource_version=start, timeout_s=10), seen[i])
        for i in range(3)
    ]
    for _ in range(200):
        if kube.open_watches == 3:
            break
        threading.Event().wait(0.01)
    assert kube.open_watches == 3
    kube.create(configmap("a"))
    kube.create(configmap("b"))
    for _ in range(500):
        if all(len(events) == 2 for events in seen):
            break
        threading.Event().wait(0.01)
    kube.drop_watches()  # a dropped watch may lose undelivered events: wait for delivery first
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    for events in seen:
        assert _types(events) == [("ADDED", "a"), ("ADDED", "b")]
    assert kube.open_watches == 0


def test_resume_after_dropped_watch_misses_nothing(kube: FakeKube) -> None:
    start = kube.resource_version
    stream = kube.watch("v1", "ConfigMap", resource_version=start, timeout_s=10)
    kube.create(configmap("a"))
    first = next(stream)
    kube.create(configmap("b"))
    kube.drop_watches()
    assert list(stream) == []  # ended; "b" was never delivered on this stream
    last = first.object["metadata"]["resourceVersion"]
    resumed = kube.watch("v1", "ConfigMap", resource_version=last, timeout_s=0.05)
    assert _types(list(resumed)) == [("ADDED", "b")]


def test_watch_ends_at_timeout_and_on_close(kube: FakeKube) -> None:
    assert list(kube.watch("v1", "ConfigMap", timeout_s=0.05)) == []
    kube.create(configmap("a"))
    stream = kube.watch("v1", "ConfigMap", timeout_s=30)
    assert next(stream).type == "ADDED"
    assert kube.open_watches == 1
    stream.close()  # type: ignore[attr-defined]
    assert kube.open_watches == 0


def test_watch_rejects_bad_resource_version(kube: FakeKube) -> None:
    with pytest.raises(KubeError, match="invalid resourceVersion"):
        kube.watch("v1", "ConfigMap", resource_version="abc")


# --- events --------------------------------------------------------------------------------------


def test_events_are_core_v1_and_aggregate(kube: FakeKube) -> None:
    owner = kube.create(canary())
    kube.event(owner, "Advanced", "weight 5 -> 25")
    kube.event(owner, "Advanced", "weight 5 -> 25")
    kube.event(owner, "Breached", "p99 too high", "Warning")
    events = kube.list("v1", "Event", "default")
    by_reason = {e["reason"]: e for e in events}
    assert len(events) == 2
    assert by_reason["Advanced"]["count"] == 2
    assert by_reason["Breached"]["type"] == "Warning"
    involved = by_reason["Advanced"]["involvedObject"]
    assert involved == {
        "apiVersion": CANARY_API,
        "kind": "ModelCanary",
        "name": "c1",
        "namespace": "default",
        "uid": owner["metadata"]["uid"],
        "resourceVersion": owner["metadata"]["resourceVersion"],
    }


def test_event_type_is_validated(kube: FakeKube) -> None:
    with pytest.raises(KubeError, match="Normal or Warning"):
        kube.event(canary(), "X", "y", "Info")


# --- fault injection and the call log ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "call"),
    [
        pytest.param("get", lambda k: k.get(Ref("v1", "ConfigMap", "default", "cfg")), id="get"),
        pytest.param("list", lambda k: k.list("v1", "ConfigMap"), id="list"),
        pytest.param("create", lambda k: k.create(configmap("other")), id="create"),
        pytest.param("replace", lambda k: k.replace(configmap(k="2")), id="replace"),
        pytest.param(
            "patch", lambda k: k.patch(Ref("v1", "ConfigMap", "default", "cfg"), {}), id="patch"
        ),
        pytest.param("apply", lambda k: k.apply(configmap(k="3")), id="apply"),
        pytest.param(
            "delete", lambda k: k.delete(Ref("v1", "ConfigMap", "default", "cfg")), id="delete"
        ),
        pytest.param("watch", lambda k: k.watch("v1", "ConfigMap"), id="watch"),
        pytest.param("event", lambda k: k.event(configmap(), "R", "m"), id="event"),
    ],
)
def test_fail_next_raises_then_recovers(
    kube: FakeKube, method: str, call: Callable[[FakeKube], object]
) -> None:
    kube.create(configmap())
    before = kube.get(Ref("v1", "ConfigMap", "default", "cfg"))
    kube.fail_next(method, KubeError("503 ServiceUnavailable"), times=2)
    for _ in range(2):
        with pytest.raises(KubeError, match="503"):
            call(kube)
    assert kube.get(Ref("v1", "ConfigMap", "default", "cfg")) == before  # nothing happened
    call(kube)  # the third call goes through


def test_fail_next_rejects_unknown_methods(kube: FakeKube) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        kube.fail_next("frobnicate", KubeError("x"))


def test_call_log_counts_calls(kube: FakeKube) -> None:
    stored = kube.create(configmap())
    for _ in range(3):
        kube.get(ref(stored))
    kube.list("v1", "ConfigMap")
    assert kube.count("get") == 3
    assert kube.count() == 5
    assert kube.calls[0].method == "create"
    assert kube.calls[0].target == "ConfigMap/default/cfg"
    kube.reset_calls()
    assert kube.count() == 0


# --- thread safety -------------------------------------------------------------------------------


def test_concurrent_read_modify_write_loses_no_update(kube: FakeKube) -> None:
    kube.create(configmap(n="0"))
    target = Ref("v1", "ConfigMap", "default", "cfg")
    per_thread = 100
    conflicts: list[int] = []
    both_read = threading.Barrier(2)  # the first round: both read the same version

    def increment() -> None:
        seen = 0
        for i in range(per_thread):
            while True:
                obj = kube.get(target)
                obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
                if i == 0 and seen == 0:
                    both_read.wait(timeout=10)
                time.sleep(0)  # let the other thread in between read and write
                try:
                    kube.replace(obj)
                    break
                except Conflict:
                    seen += 1
        conflicts.append(seen)

    threads = [threading.Thread(target=increment) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert kube.get(target)["data"]["n"] == str(2 * per_thread)
    assert len(conflicts) == 2
    assert sum(conflicts) >= 1  # the race really happened
