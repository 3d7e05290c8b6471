"""Git write-back: after an automatic rollback, revert the failed candidate in the canary.yml.

Owns :class:`GitWriteBack`, a reconciler Notifier (``notify(obj, canary, state, event)``) that
queues a :class:`WriteBackRequest` for every ``RolledBack`` event of a canary with
``spec.gitWriteBack`` and handles it on its own worker thread (``notify`` never blocks), and
:meth:`GitWriteBack.write_back`, the synchronous procedure (tests and ``recover`` call it too):
find the file (:mod:`controlplane.gitops.locate`), skip a rollback already written (the commit
trailer) or a candidate already replaced, restore the newest earlier candidate in the file's
history by editing only the candidate mapping
(:func:`controlplane.gitops.yamledit.replace_candidate`), commit and push, never forced (or open
a pull request, :mod:`controlplane.gitops.hosting`).
Failures on git or the hosting API are retried on the worker after ``retry_s`` delays, and again
by :meth:`GitWriteBack.recover` at the next start.

Which rollbacks is a rollout rule (:func:`controlplane.rollout.writeback_rule.writes_back`); each
is written back once per process (:class:`controlplane.rollout.events.Delivered`) and once across
restarts (the trailer). The outcome is a Kubernetes Event on the canary (``GitWriteBack`` or
``GitWriteBackFailed``), a log line and the optional ``on_result`` callback. What users see, step
by step: docs/git-writeback.md, "Write-back".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.delayqueue import DelayQueue
from controlplane.errors import ControlPlaneError, GitError, SpecError, WriteBackError
from controlplane.gitops.credentials import GitCredentials, from_secret, redact
from controlplane.gitops.hosting import default_api_url, guess_provider, open_pull_request
from controlplane.gitops.locate import DEFAULT_ARGOCD_NAMESPACE, find_file, locate
from controlplane.gitops.repo import GitRepo, Identity
from controlplane.gitops.yamledit import (
    candidate_of,
    normalized_variant,
    replace_candidate,
    same_variant,
)
from controlplane.kube.client import KubeClient, Obj
from controlplane.rollout import events
from controlplane.rollout.state import Event, Reason, RolloutState
from controlplane.rollout.writeback_rule import WriteBackOptions, writes_back
from controlplane.spec.models import API_VERSION, KIND, ModelCanary

log = logging.getLogger(__name__)

TRAILER_KEY = "Canary-Rollback"
PR_BRANCH_PREFIX = "canary-rollback/"
DEFAULT_AUTHOR = Identity()
DEFAULT_RETRY_S = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 900.0, 900.0)
"""Delays before each retry of a write-back that failed on git or the hosting API (63.5 min)."""
REMEMBERED = 1000
"""Write-backs the worker remembers as done (the newest), so a rollback event told again (a
status write that conflicted after the notification) is not written back a second time."""

Status = Literal["committed", "pull-request", "already-written", "already-reverted", "failed"]


@dataclass(frozen=True)
class WriteBackRequest:
    """One rollback to write back: which canary, which spec (hash), why, and the object."""

    namespace: str
    name: str
    spec_hash: str
    canary: ModelCanary
    reason: Reason | None
    obj: Obj = field(repr=False)
    event: Event | None = None

    @property
    def key(self) -> str:
        """The delivery key of this write-back: the rollback event's fingerprint for the
        write-back sink (without an event, the rollout's: namespace, name and spec hash)."""
        uid = (self.obj.get("metadata") or {}).get("uid")
        owner = events.owner_id(self.namespace, self.name, uid if isinstance(uid, str) else None)
        if self.event is None:
            return events.delivery_key(f"{owner}|{self.spec_hash}", events.WRITE_BACK)
        return events.delivery_key(events.fingerprint(owner, self.event), events.WRITE_BACK)

    @property
    def trailer(self) -> str:
        return f"{TRAILER_KEY}: {self.namespace}/{self.name} {self.spec_hash}"


@dataclass(frozen=True)
class WriteBackResult:
    """What :meth:`GitWriteBack.write_back` did."""

    status: Status
    namespace: str
    name: str
    message: str
    repo: str | None = None
    branch: str | None = None
    path: str | None = None
    commit: str | None = None
    url: str | None = None
    attempts: int = 0
    retry_in: float | None = None  # seconds until the worker tries again (None: it does not)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class _Job:
    """A queued write-back and how many times the worker has tried it."""

    request: WriteBackRequest
    tries: int = 0


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def commit_message(
    request: WriteBackRequest,
    path: str,
    restored_from: tuple[str, str] | None,
) -> str:
    """The commit message: subject, what happened, what was restored, and the trailer."""
    candidate = request.canary.spec.candidate
    reason = request.reason
    lines = [
        f"Roll back candidate {candidate.name} of {request.namespace}/{request.name}",
        "",
    ]
    if reason is not None:
        how = "aborted by a user" if reason.kind == "aborted" else "rolled back automatically"
        where = f"step {reason.step}" if reason.step else "shadow"
        lines.append(f"The canary {how} at {where}: {reason.message}")
        lines.append("")
    if restored_from is not None:
        sha, subject = restored_from
        lines.append(
            f"This restores spec.candidate in {path} to its version of {sha[:12]} ({subject!r})."
        )
    else:
        lines.append(
            f"{path} had no earlier candidate: spec.candidate now equals spec.stable "
            f"(keeping the name {candidate.name!r}), so nothing new is rolled out."
        )
    lines += [
        "",
        f"Failed candidate: {candidate.name} (storageUri {candidate.storage_uri}, "
        f"quantization {candidate.quantization}, gpu {candidate.gpu})",
    ]
    if reason is not None:
        parts = [f"kind {reason.kind}"]
        if reason.metric is not None:
            parts.append(f"metric {reason.metric}")
        if reason.key is not None:
            parts.append(f"check {reason.key}")
        if reason.value is not None or reason.metric is not None:
            parts.append(f"value {_num(reason.value)}")
        if reason.above is not None:
            parts.append(f"threshold above {_num(reason.above)}")
        if reason.below is not None:
            parts.append(f"threshold below {_num(reason.below)}")
        if reason.window is not None:
            parts.append(f"window {reason.window}")
        parts.append(f"step {reason.step}")
        lines.append("Reason: " + "; ".join(parts))
    lines += ["", request.trailer, ""]
    return "\n".join(lines)


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

    ``cache_dir`` holds one bare mirror per repository. ``api_urls`` maps ``github`` / ``gitlab``
    (or a repository URL) to the REST API base URL (defaults from the host name).
    ``before_push(attempt)`` is called right before every push (a seam for tests and metrics).
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
        self.author = author
        self.api_urls = dict(api_urls or {})
        self.on_abort = on_abort
        self.max_attempts = max(1, max_attempts)
        self.argocd_namespace = argocd_namespace
        self.before_push = before_push
        self.on_result = on_result
        self.credentials = credentials
        self.git_timeout_s = git_timeout_s
        self.http_timeout_s = http_timeout_s
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
        failed = request.canary.spec.candidate.model_dump(mode="json", by_alias=True)
        done: dict[str, Any] = {
            "namespace": request.namespace,
            "name": request.name,
            "repo": repo.url,
        }
        for attempt in range(1, self.max_attempts + 1):
            tip = repo.fetch(branch)
            if tip is None:
                raise WriteBackError(f"{repo.url} has no branch {branch!r}")
            written = repo.find_trailer(tip, request.trailer)
            if written is not None:
                return WriteBackResult(
                    "already-written",
                    message=f"{branch} already has the write-back commit {written[:12]}",
                    branch=branch,
                    commit=written,
                    attempts=attempt,
                    **done,
                )
            path = find_file(repo, tip, where.path, request.name, request.namespace)
            text = repo.read(tip, path) or ""
            current = candidate_of(text, request.name, request.namespace)
            if current is None or not same_variant(current, failed):
                return WriteBackResult(
                    "already-reverted",
                    message=f"{path}@{branch} no longer holds the failed candidate "
                    f"{request.canary.spec.candidate.name}: nothing to revert",
                    branch=branch,
                    path=path,
                    attempts=attempt,
                    **done,
                )
            previous = self._previous(repo, tip, path, request, failed)
            edit = replace_candidate(
                text,
                request.name,
                request.namespace,
                previous[0] if previous else None,
                filename=path,
            )
            restored = (previous[1], repo.subject(previous[1])) if previous else None
            message = commit_message(request, path, restored)
            commit = repo.commit_file(tip, path, edit.text, message, self.author)
            if spec.mode == "pull-request":
                return self._pull_request(
                    repo,
                    request,
                    spec.provider,
                    branch,
                    path,
                    commit,
                    message,
                    credentials,
                    attempt,
                    done,
                )
            if self.before_push is not None:
                self.before_push(attempt)
            if repo.push(commit, branch):
                return WriteBackResult(
                    "committed",
                    message=f"pushed {commit[:12]} to {branch}: {path} reverts candidate "
                    f"{request.canary.spec.candidate.name}",
                    branch=branch,
                    path=path,
                    commit=commit,
                    attempts=attempt,
                    **done,
                )
            log.info(
                "git write-back %s/%s: %s moved on (attempt %d), retrying on the new tip",
                request.namespace,
                request.name,
                branch,
                attempt,
            )
        raise GitError(  # not WriteBackError: a later try may find the branch still
            f"{branch} of {repo.url} kept moving: gave up after {self.max_attempts} attempts"
        )

    @staticmethod
    def _previous(
        repo: GitRepo, tip: str, path: str, request: WriteBackRequest, failed: Mapping[str, Any]
    ) -> tuple[str, str] | None:
        """(text, commit) of the newest version of ``path`` whose candidate is valid and not the
        failed one; None when the canary came into the file with the failed candidate."""
        for sha in repo.file_history(tip, path):
            old = repo.read(sha, path)
            cand = candidate_of(old, request.name, request.namespace) if old else None
            if cand is None:
                return None  # the canary was not in this file before: it came with the failure
            if same_variant(cand, failed) or normalized_variant(cand) is None:
                continue  # the failed candidate, or an invalid one (never restored)
            return old or "", sha
        return None

    def _pull_request(
        self,
        repo: GitRepo,
        request: WriteBackRequest,
        provider_name: str | None,
        base: str,
        path: str,
        commit: str,
        message: str,
        credentials: GitCredentials | None,
        attempt: int,
        done: dict[str, Any],
    ) -> WriteBackResult:
        provider = guess_provider(repo.url, provider_name)
        api = self.api_urls.get(repo.url) or self.api_urls.get(provider)
        api = api or default_api_url(provider, repo.url)
        head = f"{PR_BRANCH_PREFIX}{request.namespace}-{request.name}-{request.spec_hash}"
        existing = repo.remote_branch(head)
        pushed = commit
        if existing is not None:
            tip = repo.fetch(head)
            if tip is not None and request.trailer in repo.message(tip):
                pushed = tip  # pushed before a restart: open (or find) the request only
            else:
                raise WriteBackError(
                    f"branch {head} exists without the write-back commit: delete it or merge it"
                )
        if pushed == commit:
            if self.before_push is not None:
                self.before_push(attempt)
            if not repo.push(commit, head):
                raise WriteBackError(f"branch {head} appeared while pushing: try again")
        subject, _, body = message.partition("\n")
        token = credentials.token if credentials is not None else None
        pr = open_pull_request(
            provider,
            api,
            repo.url,
            token,
            head=head,
            base=base,
            title=subject,
            body=body.strip() + "\n",
            timeout_s=self.http_timeout_s,
        )
        state = "opened" if pr.created else "already open"
        return WriteBackResult(
            "pull-request",
            message=f"{provider} request {state} for {head} -> {base}"
            + (f": {pr.url}" if pr.url else ""),
            branch=head,
            path=path,
            commit=pushed,
            url=pr.url,
            attempts=attempt,
            **done,
        )

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
