"""One write-back's git work: the revert commit of a failed candidate, pushed or proposed.

Owns :class:`Reverter` and the request and result of a write-back; called by
:class:`controlplane.gitops.writeback.GitWriteBack`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.errors import GitError, WriteBackError
from controlplane.gitops.credentials import GitCredentials
from controlplane.gitops.hosting import default_api_url, guess_provider, open_pull_request
from controlplane.gitops.locate import find_file
from controlplane.gitops.repo import GitRepo, Identity
from controlplane.gitops.yamledit import (
    candidate_of,
    normalized_variant,
    replace_candidate,
    same_variant,
)
from controlplane.kube.client import Obj
from controlplane.rollout import events
from controlplane.rollout.state import Event, Reason
from controlplane.spec.models import GitWriteBackSpec, ModelCanary

log = logging.getLogger(__name__)

TRAILER_KEY = "Canary-Rollback"
PR_BRANCH_PREFIX = "canary-rollback/"

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


@dataclass
class Reverter:
    """Writes one rollback back on a repository: commit and push (``attempts`` times while the
    branch moves on), or push a branch and open a pull request. ``api_urls`` maps ``github`` /
    ``gitlab`` (or a repository URL) to the REST API base URL (defaults from the host name);
    ``before_push(attempt)`` is called right before every push (a seam for tests and metrics)."""

    author: Identity
    api_urls: dict[str, str] = field(default_factory=dict)
    max_attempts: int = 5
    before_push: Callable[[int], None] | None = None
    http_timeout_s: float = 30.0

    def revert(
        self,
        repo: GitRepo,
        branch: str,
        where_path: str | None,
        request: WriteBackRequest,
        spec: GitWriteBackSpec,
        credentials: GitCredentials | None,
    ) -> WriteBackResult:
        """Revert the failed candidate of ``request`` on ``branch`` (the file at ``where_path``,
        else found by the canary's name)."""
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
            path = find_file(repo, tip, where_path, request.name, request.namespace)
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
            previous = _previous(repo, tip, path, request, failed)
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
