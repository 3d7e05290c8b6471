"""The controller loop: watch + work queue + batched analysis + backoff + HA.

Owns :class:`Controller`, the one long-running object of ``canaryctl controller``: its watch
feeds its work queue, each pass runs one batched analysis tick, and with leader election nothing
is reconciled without the lease. The loop: docs/controller.md, "The loop".
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.controller.reconcile import Done, Key, NeedsAnalysis, Reconciler
from controlplane.controller.watch import CanaryWatch, WatchStats
from controlplane.controller.workqueue import WorkQueue
from controlplane.errors import Conflict, ProviderUnavailable
from controlplane.kube.client import KubeClient, Obj, WatchEvent
from controlplane.kube.lease import LeaderElector
from controlplane.providers.source import MetricSource
from controlplane.rollout.observations import Observations, QualityReading
from controlplane.spec.units import time_value

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3

PAIRS_READERS = 8
"""The most pairers one analysis tick reads at once (each read bounded by its own timeout)."""


class NoPrometheus:
    """The metric source of canaries without any Prometheus URL: every query is unavailable, so
    the canary pauses after ``errorLimit`` evaluations and says why."""

    def _fail(self) -> Any:
        raise ProviderUnavailable(
            "no Prometheus URL: set spec.analysis.prometheus or run the controller "
            "with --prometheus"
        )

    def instant(self, query: str, at: float) -> float:
        return float(self._fail())

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        return list(self._fail())

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        return list(self._fail())


class AnalysisObserver(Protocol):
    """Told about analysis as it happens (the metrics: :mod:`controlplane.controller.metrics`).

    ``tick``: once per analysis tick, its wall time and how many canaries and queries it had.
    ``evaluated``: once per evaluation whose result was persisted in the canary's status (an
    evaluation lost to a write conflict is evaluated again later and reported then).
    """

    def tick(self, duration_s: float, canaries: int, queries: int) -> None: ...

    def evaluated(self, key: Key, prometheus: str | None, obs: Observations) -> None: ...


@dataclass
class Stats(WatchStats):
    """Counters the runner keeps (served as Prometheus metrics by ``canaryctl controller``)."""

    reconciles: int = 0
    errors: int = 0
    conflicts: int = 0
    ticks: int = 0
    last_tick_canaries: int = 0
    last_tick_queries: int = 0
    queries_total: int = 0
    leader: bool = False
    per_tick: list[tuple[int, int]] = field(default_factory=list)


class Controller:
    """Drives a :class:`Reconciler` over every ModelCanary of ``namespaces`` (None: all)."""

    def __init__(
        self,
        kube: KubeClient,
        reconciler: Reconciler,
        sources: Callable[[str], MetricSource],
        clock: Callable[[], float],
        *,
        namespaces: Sequence[str | None] = (None,),
        elector: LeaderElector | None = None,
        grid_s: float = 0.0,
        backoff_base_s: float = 5.0,
        backoff_cap_s: float = 300.0,
        default_prometheus: str | None = None,
        observer: AnalysisObserver | None = None,
        timer: Callable[[], float] = time.perf_counter,
        watch_backoff_base_s: float = 0.5,
        watch_backoff_cap_s: float = 30.0,
        list_page_size: int | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.clock = clock
        self.namespaces = list(namespaces) or [None]
        self.elector = elector
        self.queue = WorkQueue(clock, grid_s, backoff_base_s, backoff_cap_s)
        self.default_prometheus = default_prometheus
        self.stats = Stats()
        self._sources = sources
        self._evaluators: dict[str | None, BatchEvaluator] = {}
        self._was_leader = False
        self._leader_known = elector is None
        self._lock = threading.Lock()
        self.observer = observer
        self._timer = timer
        self.watch = CanaryWatch(
            kube,
            self.namespaces,
            self.queue,
            self.stats,
            clock,
            timer,
            backoff_base_s=watch_backoff_base_s,
            backoff_cap_s=watch_backoff_cap_s,
            list_page_size=list_page_size,
        )
        self._wakeups: queue.Queue[WatchEvent | None] | None = None
        self.stats.leader = elector is None

    # ------------------------------------------------------------------------- watch

    def poll(self, timeout_s: float = 0.0) -> int:
        """List where needed, then consume the watch events available now
        (:meth:`CanaryWatch.poll`)."""
        return self.watch.poll(timeout_s)

    def sync(self, ns: str | None) -> int:
        """List the canaries of ``ns`` (None: all) and watch on (:meth:`CanaryWatch.sync`)."""
        return self.watch.sync(ns)

    def ready(self) -> tuple[bool, str]:
        """(ready?, why): every namespace listed once and the leader state known."""
        missing = self.watch.unsynced()
        if missing:
            names = ", ".join(ns or "all namespaces" for ns in missing)
            return False, f"the watch of {names} has not listed its canaries yet"
        if not self._leader_known:
            return False, "leader election has not run yet"
        if self.elector is None:
            return True, "running without leader election"
        return True, "leading" if self.stats.leader else "standing by (another replica leads)"

    def snapshot(self) -> list[Obj]:
        """The ModelCanaries as last seen through the watch (status included), by key."""
        return self.watch.snapshot()

    def exports_canaries(self) -> bool:
        """Whether this replica exports per-canary metrics (the leader only, or when alone)."""
        return self.elector is None or self.stats.leader

    def wake(self, namespace: str, name: str) -> None:
        """Reconcile ``namespace/name`` now (after the API recorded an intent on it)."""
        self.queue.add([(namespace, name)])
        with self._lock:
            wakeups = self._wakeups
        if wakeups is not None:
            wakeups.put(None)  # interrupts the production loop's wait

    def next_wake(self) -> float | None:
        """When a timer fires next (None: no timer); dirty keys mean now."""
        return self.queue.next_wake()

    # ------------------------------------------------------------------------- one pass

    def is_leader(self) -> bool:
        if self.elector is None:
            return True
        leader = self.elector.try_acquire_or_renew()
        self._leader_known = True
        if leader and not self._was_leader:
            log.info("became leader as %s", self.elector.identity)
            self.queue.add(self.watch.known())  # take over every known canary now
        self._was_leader = leader
        self.stats.leader = leader
        return leader

    def run_once(self) -> float | None:
        """Reconcile every dirty or due canary at ``clock()``; the next wake time."""
        now = self.clock()
        if not self.is_leader():
            return now + (self.elector.lease_duration_s / 3 if self.elector else 1.0)
        keys = self.queue.take_due(now)
        waiting: list[tuple[Key, NeedsAnalysis]] = []
        for key in sorted(keys):
            prepared = self._guarded(key, now, functools.partial(self.reconciler.prepare, key, now))
            if isinstance(prepared, Done):
                self.queue.succeeded(key, prepared.requeue_at)
            elif isinstance(prepared, NeedsAnalysis):
                waiting.append((key, prepared))
        if waiting:
            self._analyse(waiting, now)
        return self.next_wake()

    def _analyse(self, waiting: list[tuple[Key, NeedsAnalysis]], now: float) -> None:
        """One analysis tick: the batch's queries, each Prometheus' in one evaluation, while the
        pairers of the quality canaries among ``waiting`` are read in threads of their own (at
        most :data:`PAIRS_READERS` at once): a tick waits for its pairers as long as the slowest
        read's timeout, not one timeout per quality canary in turn."""
        quality = [(key, p) for key, p in waiting if p.reads_quality]
        if not quality:
            self._evaluate(waiting, now, {})
            return
        workers = min(PAIRS_READERS, len(quality))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pairs") as pool:
            readings = {key: pool.submit(self.reconciler.read_pairs, p.ctx) for key, p in quality}
            self._evaluate(waiting, now, readings)

    def _evaluate(
        self,
        waiting: list[tuple[Key, NeedsAnalysis]],
        now: float,
        readings: Mapping[Key, Future[QualityReading]],
    ) -> None:
        began = self._timer()
        by_url: dict[str | None, list[tuple[Key, NeedsAnalysis]]] = {}
        for key, prepared in waiting:
            url = prepared.canary.spec.analysis.prometheus or self.default_prometheus
            by_url.setdefault(url, []).append((key, prepared))
        canaries = queries = 0
        for url, group in by_url.items():
            evaluator = self._evaluator(url)
            requests = [
                Request(
                    key,
                    p.canary,
                    p.due,
                    since=p.ctx.state.stage_started_at,
                    http_source=p.http_source,
                    mirror=p.ctx.state.mirror,
                )
                for key, p in group
            ]
            try:
                found: dict[Hashable, Observations] = evaluator.evaluate(requests, now)
            except Exception as exc:  # a bug in analysis must not stop the controller
                log.exception("analysis tick failed for %s", url)
                for key, _ in group:
                    self._failed(key, now, exc)
                continue
            canaries += evaluator.last.canaries
            queries += evaluator.last.queries
            for key, prepared in group:
                obs = found[key]
                reading = readings.get(key)
                result = self._guarded(
                    key, now, functools.partial(self._finish, prepared, obs, reading), retry=False
                )
                if result is not _FAILED:
                    self.queue.succeeded(key, result)
                if self.observer is not None and _persisted(prepared, now):
                    self.observer.evaluated(key, url, obs)
        self.stats.ticks += 1
        self.stats.last_tick_canaries = canaries
        self.stats.last_tick_queries = queries
        self.stats.queries_total += queries
        self.stats.per_tick.append((canaries, queries))
        del self.stats.per_tick[:-100]
        if self.observer is not None:
            self.observer.tick(self._timer() - began, canaries, queries)

    def _finish(
        self,
        prepared: NeedsAnalysis,
        obs: Observations,
        reading: Future[QualityReading] | None,
    ) -> float | None:
        """:meth:`Reconciler.finish` of ``prepared`` with ``obs`` and, for a quality canary, its
        pairer's reading (waited for here)."""
        if reading is not None:
            obs = replace(obs, quality=reading.result())
        return self.reconciler.finish(prepared.ctx, obs)

    def _evaluator(self, url: str | None) -> BatchEvaluator:
        if url not in self._evaluators:
            source: MetricSource = NoPrometheus() if url is None else self._sources(url)
            self._evaluators[url] = BatchEvaluator(source)
        return self._evaluators[url]

    def _guarded(self, key: Key, now: float, call: Callable[[], Any], retry: bool = True) -> Any:
        """Run ``call``; Conflict re-reads (retries) at once, anything else backs the key off."""
        attempts = CONFLICT_RETRIES if retry else 1
        for _ in range(attempts):
            self.stats.reconciles += 1
            try:
                return call()
            except Conflict:
                self.stats.conflicts += 1
                continue
            except Exception as exc:
                self._failed(key, now, exc)
                return _FAILED
        self.queue.add([key])  # still conflicting: try again on the next pass
        return _FAILED

    def _failed(self, key: Key, now: float, exc: BaseException) -> None:
        self.stats.errors += 1
        self.queue.failed(key, now, exc)

    # ------------------------------------------------------------------------- production loop

    def run(self, stop: threading.Event, sleep: Callable[[float], None] | None = None) -> None:
        """List, then watch in background threads and reconcile until ``stop`` is set.

        :meth:`wake` interrupts the wait between two passes."""
        events: queue.Queue[WatchEvent | None] = queue.Queue()
        with self._lock:
            self._wakeups = events

        threads = [
            threading.Thread(
                target=self.watch.follow,
                args=(ns, stop, events, sleep or stop.wait),
                name=f"watch-{ns}",
                daemon=True,
            )
            for ns in self.namespaces
        ]
        for thread in threads:
            thread.start()
        try:
            while not stop.is_set():
                wake = self.run_once()
                now = self.clock()
                wait = 5.0 if wake is None else min(max(wake - now, 0.0), 5.0)
                if self.elector is not None:
                    wait = min(wait, self.elector.lease_duration_s / 3)
                try:
                    self._take(events.get(timeout=wait))
                    while True:
                        self._take(events.get_nowait())
                except queue.Empty:
                    pass
        finally:
            with self._lock:
                self._wakeups = None
            if self.elector is not None:
                self.elector.release()

    def _take(self, event: WatchEvent | None) -> None:
        if event is not None:  # None: a wake-up, the key is already dirty
            self.watch.observe(event)


_FAILED = object()


def _persisted(prepared: NeedsAnalysis, now: float) -> bool:
    """Whether the evaluation at ``now`` is in the status last written for this canary."""
    status = prepared.ctx.obj.get("status") or {}
    try:
        return time_value(status.get("lastEvaluation")) == now
    except ValueError:
        return False
