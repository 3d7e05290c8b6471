"""Git write-back: after an automatic rollback, revert the failed candidate in the canary.yml.

Owns :class:`GitWriteBack`, the Notifier that queues each rollback the rule
:func:`controlplane.rollout.writeback_rule.writes_back` picks and writes it back on a worker
thread (:mod:`controlplane.gitops.revert`), retrying failures. docs/git-writeback.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from controlplane.delayqueue import DelayQueue
from controlplane.errors import ControlPlaneError, GitError, SpecError, WriteBackError
from controlplane.gitops.credentials import GitCredentials, from_secret, redact
from controlplane.gitops.locate import DEFAULT_ARGOCD_NAMESPACE, locate
from controlplane.gitops.repo import GitRepo, Identity
from controlplane.gitops.revert import Reverter, WriteBackRequest, WriteBackResult
from controlplane.kube.client import KubeClient, Obj
from controlplane.rollout import events
from controlplane.rollout.state import Event, RolloutState
from controlplane.rollout.writeback_rule import WriteBackOptions, writes_back
from controlplane.spec.models import API_VERSION, KIND, ModelCanary

log = logging.getLogger(__name__)

DEFAULT_AUTHOR = Identity()
DEFAULT_RETRY_S = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 900.0, 900.0)
"""Delays before each retry of a write-back that failed on git or the hosting API (63.5 min)."""
REMEMBERED = 1000
"""Write-backs the worker remembers as done (the newest), so a rollback event told again (a
status write that conflicted after the notification) is not written back a second time."""


@dataclass
class _Job:
    """A queued write-back and how many times the worker has tried it."""

    request: WriteBackRequest
    tries: int = 0


def last_rollback(state: RolloutState) -> Event:
    """The ``RolledBack`` history entry of a rolled-back ``state`` (the event the reconciler told
    the write-back); one made of the state when the bounded history no longer holds it."""
    for event in reversed(state.history):
        if event.type == "RolledBack":
            return event
    return Event("RolledBack", state.last_evaluation or 0.0, state.step, 0)


def request_of(
    obj: Obj, canary: ModelCanary, state: RolloutState, event: Event
) -> WriteBackRequest:
    """The write-back of rollback ``event`` of the canary ``obj`` in ``state``."""
    meta = obj.get("metadata") or {}
    return WriteBackRequest(
        namespace=meta.get("namespace") or canary.metadata.namespace or "default",
        name=meta.get("name") or canary.metadata.name,
        spec_hash=state.spec_hash,
        canary=canary,
        reason=state.reason,
        obj=obj,
        event=event,
    )


def request_name(request: WriteBackRequest) -> tuple[str, str]:
    return (request.namespace, request.name)


class GitWriteBack:
    """The write-back Notifier. See the module docstring.

    ``cache_dir`` holds one bare mirror per repository; ``author``, ``api_urls``,
    ``max_attempts``, ``before_push`` and ``http_timeout_s`` go to its :class:`Reverter`.
    ``retry_s``: the delays before each retry of a write-back that failed on git or the hosting
    API (see the module docstring); empty: no retries.
    """

    def __init__(
        self,
        kube: KubeClient | None,
        cache_dir: str | os.PathLike[str],
        *,
        author: Identity = DEFAULT_AUTHOR,
        api_urls: Mapping[str, str] | None = None,
        on_abort: bool = False,
        max_attempts: int = 5,
        argocd_namespace: str = DEFAULT_ARGOCD_NAMESPACE,
        queue_size: int = 100,
        before_push: Callable[[int], None] | None = None,
        on_result: Callable[[WriteBackResult], None] | None = None,
        credentials: GitCredentials | None = None,
        git_timeout_s: float = 120.0,
        http_timeout_s: float = 30.0,
        retry_s: Sequence[float] = DEFAULT_RETRY_S,
    ) -> None:
        self.kube = kube
        self.cache_dir = os.fspath(cache_dir)
        self.reverter = Reverter(
            author, dict(api_urls or {}), max(1, max_attempts), before_push, http_timeout_s
        )
        self.on_abort = on_abort
        self.argocd_namespace = argocd_namespace
        self.on_result = on_result
        self.credentials = credentials
        self.git_timeout_s = git_timeout_s
        self.retry_s = tuple(retry_s)
        self._queue: DelayQueue[_Job] = DelayQueue(queue_size)
        # queued, in flight, waiting for a retry, or done
        self._delivered = events.Delivered(limit=REMEMBERED)
        self._clock = time.time
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- Notifier --------------------------------------------------------------------------------

    def wants(self, canary: ModelCanary, state: RolloutState, event: Event) -> bool:
        """Whether ``event`` is reverted in git: the rollout rule
        :func:`~controlplane.rollout.writeback_rule.writes_back` with this notifier's options."""
        return writes_back(canary, state, event, WriteBackOptions(on_abort=self.on_abort))

    def notify(self, obj: Obj, canary: ModelCanary, state: RolloutState, event: Event) -> None:
        """Queue a write-back when :meth:`wants` says so; returns at once."""
        if self.wants(canary, state, event):
            self.submit(request_of(obj, canary, state, event))

    def submit(self, request: WriteBackRequest) -> bool:
        """Queue ``request`` (False when the same one is already queued, in flight, waiting for a
        retry or done, or when the queue is full)."""
        with self._lock:
            if self._delivered.has(request.key):
                return False
            if self._queue.put(_Job(request)) is not None:
                log.error(
                    "git write-back queue full or closed: dropped %s/%s",
                    request.namespace,
                    request.name,
                )
                return False
            self._delivered = self._delivered.with_key(request.key, self._clock())
            self._start_locked()
        return True

    def recover(self, namespaces: Iterable[str | None] = (None,)) -> int:
        """Queue every rolled-back canary that opted in (after a restart: idempotent)."""
        if self.kube is None:
            return 0
        queued = 0
        for ns in namespaces:
            for obj in self.kube.list(API_VERSION, KIND, namespace=ns):
                status = obj.get("status") or {}
                if status.get("phase") != "rolled_back":
                    continue
                try:
                    canary = ModelCanary.model_validate(
                        {k: v for k, v in obj.items() if k != "status"}
                    )
                    state = RolloutState.from_status(status)
                except (SpecError, ValueError):
                    continue
                rolled = last_rollback(state)
                if self.wants(canary, state, rolled):
                    queued += self.submit(request_of(obj, canary, state, rolled))
        return queued

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until every queued request is handled, retries included (tests, shutdown)."""
        return self._queue.join(timeout_s)

    def close(self, timeout_s: float | None = 10.0) -> None:
        """Do the queued work that falls due within ``timeout_s`` and stop the worker; the rest
        (retries not due yet) is dropped: the next start's :meth:`recover` finds those
        rollbacks again."""
        self._queue.close(timeout_s)
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        for job in self._queue.drain():
            request = job.request
            log.warning("git write-back of %s/%s dropped at shutdown", *request_name(request))
            with self._lock:
                self._delivered = self._delivered.without(request.key)

    def _start_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="git-write-back", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            result: WriteBackResult | None = None
            try:
                result = self.write_back(job.request, tries=job.tries)
            except Exception:  # the worker must survive anything
                log.exception("git write-back of %s/%s crashed", *request_name(job.request))
            finally:
                retry_in = result.retry_in if result is not None else None
                if retry_in is not None and not self._queue.closed:
                    job.tries += 1
                elif result is None or not result.ok:
                    with self._lock:  # failed for good: a later notification may try again
                        self._delivered = self._delivered.without(job.request.key)
                self._queue.task_done(retry_in)

    # --- the procedure ---------------------------------------------------------------------------

    def write_back(self, request: WriteBackRequest, tries: int | None = None) -> WriteBackResult:
        """Do the write-back now (see the module docstring); report, never raise product errors.

        ``tries``: how many times the worker has tried this request before (None: a call from
        outside the worker, never retried). A failure on git or the hosting API within
        ``retry_s`` gets ``retry_in`` and says so in its message."""
        try:
            result = self._write_back(request)
        except ControlPlaneError as exc:
            message = redact(str(exc), self.credentials)
            retry_in = None
            if tries is not None and isinstance(exc, GitError):
                if isinstance(exc, WriteBackError):
                    pass  # the file or the canary is not there: trying again changes nothing
                elif tries < len(self.retry_s):
                    retry_in = self.retry_s[tries]
                    message += f" (retry {tries + 1} of {len(self.retry_s)} in {retry_in:g} s)"
                else:
                    message += (
                        f" (gave up after {tries} retries; the controller's next start tries again)"
                    )
            result = WriteBackResult(
                "failed", request.namespace, request.name, message, retry_in=retry_in
            )
        self._report(request, result)
        return result

    def _credentials(self, request: WriteBackRequest) -> GitCredentials | None:
        spec = request.canary.spec.git_write_back
        ref = spec.credentials_secret_ref if spec is not None else None
        if ref is None:
            return self.credentials
        if self.kube is None:
            raise GitError("a credentials Secret cannot be read without a Kubernetes client")
        return from_secret(self.kube, request.namespace, ref.name, ref.key)

    def _write_back(self, request: WriteBackRequest) -> WriteBackResult:
        spec = request.canary.spec.git_write_back
        if spec is None:
            raise WriteBackError("spec.gitWriteBack is not set")
        where = locate(self.kube, request.obj, spec, argocd_namespace=self.argocd_namespace)
        credentials = self._credentials(request)
        repo = GitRepo(where.repo, self.cache_dir, credentials, timeout_s=self.git_timeout_s)
        branch = where.branch or repo.default_branch()
        return self.reverter.revert(repo, branch, where.path, request, spec, credentials)

    def _report(self, request: WriteBackRequest, result: WriteBackResult) -> None:
        level = logging.INFO if result.ok else logging.WARNING
        log.log(
            level,
            "git write-back %s/%s: %s: %s",
            request.namespace,
            request.name,
            result.status,
            result.message,
        )
        if self.kube is not None:
            reason = "GitWriteBack" if result.ok else "GitWriteBackFailed"
            try:
                self.kube.event(
                    request.obj, reason, result.message, "Normal" if result.ok else "Warning"
                )
            except ControlPlaneError as exc:
                log.warning("cannot record the write-back event: %s", exc)
        if self.on_result is not None:
            self.on_result(result)
