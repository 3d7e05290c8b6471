"""The controller runner's list-then-watch (controlplane/controller/runner.py), on FakeKube and on
the loopback kube-apiserver: bookmarks keep a quiet namespace's version current, a 410 relists
and prunes canaries deleted while nobody watched, other failures back off (recorded delays, the
runner's ``clock``; nothing sleeps for the backoff).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.api import canary as api_canary

from controlplane.controller.reconcile import Done
from controlplane.controller.runner import Controller
from controlplane.errors import KubeError
from controlplane.kube.client import KubeClient, Obj, Ref, WatchEvent
from controlplane.kube.real import RealKube
from controlplane.spec.models import API_VERSION, KIND
from harness.kube.fake import FakeKube

NS = "ml"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def controller(kube: KubeClient, clock: Clock, ns: str = NS, **kw: Any) -> Controller:
    # The reconciler and metric sources are never reached: these tests only list and watch.
    return Controller(kube, None, lambda url: None, clock, namespaces=[ns], **kw)  # type: ignore[arg-type]


def configmap(ns: str, name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}}


def take_dirty(ctrl: Controller) -> set[tuple[str, str]]:
    return ctrl.queue.take_due(-1.0)


def bookmark_and_end(kube: FakeKube, ctrl: Controller, seen: int) -> Callable[[], None]:
    """Send a bookmark, wait until the controller has taken ``seen`` in all, end the watches."""

    def run() -> None:
        kube.bookmark()
        for _ in range(10_000):
            if ctrl.stats.bookmarks >= seen:
                break
            time.sleep(0.001)
        kube.drop_watches()

    return run


def writes_during_watch(
    kube: FakeKube, writes: int, tag: str, then: Callable[[], None] | None = None
) -> threading.Thread:
    """Once a watch is open, write ``writes`` ConfigMaps in another namespace, then run
    ``then`` (thread)."""

    def run() -> None:
        for _ in range(10_000):
            if kube.open_watches:
                break
            time.sleep(0.001)
        for n in range(writes):
            kube.create(configmap("elsewhere", f"{tag}-{n}"))
        if then is not None:
            then()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_bookmarks_keep_a_quiet_namespace_from_expiring() -> None:
    """Writes elsewhere move the version past the event log's window every cycle; the watch of
    the quiet namespace follows through BOOKMARKs, so it never gets 410 and never relists (before:
    every cycle expired, replayed everything and marked every canary dirty again)."""
    kube = FakeKube(history=5)
    kube.create(api_canary("quiet", namespace=NS))
    clock = Clock()
    ctrl = controller(kube, clock)
    ctrl.poll()
    assert take_dirty(ctrl) == {(NS, "quiet")}
    for cycle in range(4):
        # the server's periodic bookmark, then the end of the watch, once the bookmark is taken
        # (no timing: the watch's own timeout is only a safety net)
        thread = writes_during_watch(
            kube, 4, f"c{cycle}", then=bookmark_and_end(kube, ctrl, cycle + 1)
        )
        ctrl.poll(timeout_s=30)
        thread.join()
    assert ctrl.stats.bookmarks == 4
    assert ctrl.stats.lists == 1
    assert ctrl.stats.relists == 0
    assert ctrl.watch._rv[NS] == kube.resource_version
    assert take_dirty(ctrl) == set()


def test_a_410_relists_prunes_the_deleted_and_marks_only_the_changed() -> None:
    kube = FakeKube()
    for name in ("kept", "changed", "deleted"):
        kube.create(api_canary(name, namespace=NS))
    clock = Clock()
    ctrl = controller(kube, clock)
    ctrl.poll()
    assert take_dirty(ctrl) == {(NS, "kept"), (NS, "changed"), (NS, "deleted")}
    kube.delete(Ref(API_VERSION, KIND, NS, "deleted"))
    kube.patch(Ref(API_VERSION, KIND, NS, "changed"), {"spec": {"model": {"maxModelLen": 4096}}})
    kube.compact()  # the runner was not watching: its version is gone
    ctrl.poll()
    assert ctrl.stats.relists == 1
    assert ctrl.stats.pruned == 1
    assert [o["metadata"]["name"] for o in ctrl.snapshot()] == ["changed", "kept"]
    assert take_dirty(ctrl) == {(NS, "changed")}
    assert ctrl.watch._rv[NS] == kube.resource_version


def test_watch_failures_back_off_exponentially_and_reset_on_success() -> None:
    kube = FakeKube()
    kube.create(api_canary("c", namespace=NS))
    clock = Clock()
    ctrl = controller(kube, clock, watch_backoff_base_s=0.5, watch_backoff_cap_s=1.5)
    ctrl.poll()  # listed and watched
    kube.fail_next("watch", KubeError("500 InternalError: boom"), times=4)
    watches = kube.count("watch")
    for expected in ([0.5], [0.5, 1.0], [0.5, 1.0, 1.5], [0.5, 1.0, 1.5, 1.5]):
        ctrl.poll()
        assert ctrl.stats.watch_delays == expected
        ctrl.poll()  # still backing off: no request at all
        clock.t += expected[-1]
    assert kube.count("watch") - watches == 4
    ctrl.poll()  # works again: the backoff resets
    kube.fail_next("watch", KubeError("500 InternalError: boom"))
    ctrl.poll()
    assert ctrl.stats.watch_delays[-1] == 0.5
    assert ctrl.stats.watch_errors == 5


def test_a_failed_list_backs_off_too() -> None:
    kube = FakeKube()
    clock = Clock()
    ctrl = controller(kube, clock, watch_backoff_base_s=2.0)
    kube.fail_next("list", KubeError("503 ServiceUnavailable"), times=2)
    ctrl.poll()
    ctrl.poll()
    assert ctrl.stats.watch_delays == [2.0]
    assert ctrl.ready()[0] is False
    clock.t += 2.0
    ctrl.poll()
    assert ctrl.stats.watch_delays == [2.0, 4.0]
    clock.t += 4.0
    ctrl.poll()
    assert ctrl.ready()[0] is True


def test_canaries_backed_off_while_the_server_was_down_retry_when_it_answers() -> None:
    """A reconcile that failed while the API server was down backs its canary off (up to
    300 s); once the namespace's watch or list works again, that canary is retried at once,
    not when its timer fires (before: minutes of standing still after a short outage)."""
    kube = FakeKube()
    for name in ("stuck", "elsewhere"):
        kube.create(api_canary(name, namespace=NS))
    clock = Clock()
    ctrl = controller(kube, clock, watch_backoff_base_s=1.0)
    ctrl.poll()
    assert take_dirty(ctrl) == {(NS, "stuck"), (NS, "elsewhere")}
    for _ in range(6):  # the server is down: each retry of its reconcile fails, up to 160 s
        clock.t = ctrl.next_wake() or clock.t
        assert ctrl.queue.take_due(clock.t) <= {(NS, "stuck")}
        ctrl._failed((NS, "stuck"), clock.t, KubeError("connection refused"))
    assert ctrl.next_wake() == clock.t + 160.0
    kube.fail_next("watch", KubeError("connection refused"))
    ctrl.poll()
    assert take_dirty(ctrl) == set()
    clock.t += 1.0
    ctrl.poll()  # the server is back but says nothing yet: no evidence, no retry
    assert take_dirty(ctrl) == set()
    kube.patch(Ref(API_VERSION, KIND, NS, "elsewhere"), {"metadata": {"labels": {"a": "b"}}})
    ctrl.poll()  # its first event: the backed-off canary is retried now
    assert take_dirty(ctrl) == {(NS, "stuck")}
    assert ctrl.stats.retried_on_recovery == 1
    kube.patch(Ref(API_VERSION, KIND, NS, "elsewhere"), {"metadata": {"labels": {"a": "c"}}})
    ctrl.poll()  # later events are no news: nothing is retried twice
    assert take_dirty(ctrl) == set()


def test_a_list_that_works_again_retries_the_backed_off() -> None:
    kube = FakeKube()
    kube.create(api_canary("stuck", namespace=NS))
    clock = Clock()
    ctrl = controller(kube, clock, watch_backoff_base_s=1.0)
    ctrl.poll()
    take_dirty(ctrl)
    ctrl._failed((NS, "stuck"), clock.t, KubeError("connection refused"))
    kube.create(configmap("elsewhere", "moved-on"))
    kube.compact()  # while it was down, the server lost the version: a 410, then a list ...
    kube.fail_next("list", KubeError("503 ServiceUnavailable"))
    ctrl.poll()
    assert take_dirty(ctrl) == set()
    clock.t += 1.0
    ctrl.poll()  # ... that works: the canary is retried although nothing of it changed
    assert ctrl.stats.relists == 1
    assert take_dirty(ctrl) == {(NS, "stuck")}


class NothingToDo:
    """A reconciler with nothing to do: these tests are about the watch."""

    def prepare(self, key: Any, now: float) -> Done:
        return Done(None)


class EndsAtOnce(FakeKube):
    """A server whose every watch ends at once with nothing (a proxy that cuts streams)."""

    def watch(self, *args: Any, **kwargs: Any) -> Iterator[WatchEvent]:
        return iter(())


def test_run_backs_off_a_watch_that_ends_at_once_with_nothing() -> None:
    """Without the guard, run()'s watch thread would re-watch in a tight loop (thousands of
    requests a second); with it, each empty, early end waits 0.5 s, 1 s, 2 s ... (``sleep``)."""
    kube = EndsAtOnce()
    kube.create(api_canary("c", namespace=NS))
    stop = threading.Event()
    paused: list[float] = []

    def sleep(seconds: float) -> None:
        paused.append(seconds)
        if len(paused) == 4:
            stop.set()

    ctrl = controller(kube, Clock(), watch_backoff_base_s=0.5, watch_backoff_cap_s=30)
    ctrl.reconciler = NothingToDo()  # type: ignore[assignment]
    ctrl.run(stop, sleep=sleep)
    assert paused == [0.5, 1.0, 2.0, 4.0]
    assert kube.count("list") == 1  # the version is kept: no relist
    assert ctrl.stats.watch_errors == 4


# --- on the real API server ----------------------------------------------------------------------


@pytest.mark.binary
def test_real_server_410_relists_and_prunes(
    loopback: Any, real_kube: RealKube, real_ns: str
) -> None:
    from test_kube_contract import compact_etcd

    for name in ("kept", "deleted"):
        real_kube.create(api_canary(name, namespace=real_ns))
    ctrl = controller(real_kube, Clock(), real_ns)
    ctrl.poll(timeout_s=1.0)
    assert take_dirty(ctrl) == {(real_ns, "kept"), (real_ns, "deleted")}
    real_kube.delete(Ref(API_VERSION, KIND, real_ns, "deleted"))
    compact_etcd(loopback, real_kube, real_ns)
    # Away for long: the watch cache still holds the deletion above, so only a version older
    # than everything it and etcd keep is sure to be answered 410.
    ctrl.watch._rv[real_ns] = "1"
    ctrl.poll(timeout_s=1.0)
    assert ctrl.stats.relists == 1
    assert ctrl.stats.pruned == 1
    assert [o["metadata"]["name"] for o in ctrl.snapshot()] == ["kept"]
    assert take_dirty(ctrl) == set()


@pytest.mark.binary
def test_real_server_bookmarks_move_the_version(
    loopback: Any, real_kube: RealKube, real_ns: str
) -> None:
    from support.realkube import new_namespace, write_once_watching

    real_kube.create(api_canary("quiet", namespace=real_ns))
    ctrl = controller(real_kube, Clock(), real_ns)
    ctrl.poll(timeout_s=1.0)
    before = int(ctrl.watch._rv[real_ns] or 0)
    elsewhere = new_namespace(real_kube, "noise")
    thread, wrote = write_once_watching(
        loopback,
        "modelcanaries",
        lambda: real_kube.create(api_canary("noise", namespace=elsewhere)),
    )
    ctrl.poll(timeout_s=4.0)  # the server's bookmark comes 2 s before the end
    thread.join()
    written = int(wrote[0]["metadata"]["resourceVersion"])
    # On a loaded machine the first watch may end before its bookmark is sent: watch again
    # until one is, the deadline bounding a hang only.
    deadline = time.monotonic() + 120
    while int(ctrl.watch._rv[real_ns] or 0) < written and time.monotonic() < deadline:
        ctrl.poll(timeout_s=4.0)
    assert ctrl.stats.bookmarks >= 1
    after = int(ctrl.watch._rv[real_ns] or 0)
    assert after >= written > before
    assert take_dirty(ctrl) == {(real_ns, "quiet")}  # from the first list only
