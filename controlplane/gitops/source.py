"""The git source: apply the ModelCanary files of a git directory, for teams without Argo CD/Flux.

Owns :class:`GitSource`: polls a branch (or at once on a push), validates every file as
``canaryctl validate`` does, and applies the documents of valid files with server-side apply. An
invalid file changes nothing; objects another tool applied are never taken over. See
docs/git-writeback.md, "The git source".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import ControlPlaneError, GitError, KubeError, NotFound, Problem
from controlplane.gitops.credentials import GitCredentials
from controlplane.gitops.locate import (
    ARGOCD_TRACKING_ANNOTATION,
    SOURCE_ANNOTATION,
    YAML_SUFFIXES,
    format_source,
    parse_source,
)
from controlplane.gitops.repo import GitRepo
from controlplane.gitops.yamledit import API_VERSION_PREFIX
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.spec.load import parse_text
from controlplane.spec.models import API_GROUP, API_VERSION, KIND
from controlplane.validation import check_text

log = logging.getLogger(__name__)

FIELD_MANAGER = "canary-git-source"
COMMIT_ANNOTATION = f"{API_GROUP}/source-commit"
DIGEST_ANNOTATION = f"{API_GROUP}/source-digest"
DEFAULT_INTERVAL_S = 60.0
MAX_EVENT_PROBLEMS = 5


@dataclass(frozen=True)
class SyncReport:
    """What one :meth:`GitSource.sync_once` did. Names are ``namespace/name``."""

    commit: str
    at: float
    skipped: bool = False
    """The branch had not moved since the last clean sync: nothing was read or written."""
    applied: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    invalid: Mapping[str, tuple[Problem, ...]] = field(default_factory=dict)
    pruned: tuple[str, ...] = ()
    orphaned: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    """Objects that could not be applied or deleted (retried at the next sync)."""

    @property
    def clean(self) -> bool:
        return not self.errors


@dataclass
class _Desired:
    file: str
    key: tuple[str, str]
    data: dict[str, Any]
    digest: str


def document_digest(data: Mapping[str, Any]) -> str:
    """16 hex digits identifying a document's content (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> str:
    """Where repositories are mirrored unless told otherwise (the system's temp directory)."""
    return os.path.join(tempfile.gettempdir(), "canary-git")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _is_canary(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    api = str(data.get("apiVersion") or "")
    return data.get("kind") == KIND or api.startswith(API_VERSION_PREFIX)


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}/{key[1]}"


class GitSource:
    """Applies ModelCanary files from ``repo_url`` / ``path`` @ ``branch``. See the module doc."""

    def __init__(
        self,
        kube: KubeClient,
        repo_url: str,
        path: str,
        branch: str = "main",
        interval_s: float = DEFAULT_INTERVAL_S,
        credentials: GitCredentials | None = None,
        clock: Callable[[], float] = time.time,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        prune: bool = False,
        namespace: str = "default",
        on_invalid: Callable[[str, list[Problem]], None] | None = None,
        catalog: Catalog | None = None,
        git_timeout_s: float = 120.0,
        namespaces: Sequence[str] | None = None,
    ) -> None:
        self.kube = kube
        self.namespaces: tuple[str, ...] | None = tuple(namespaces) if namespaces else None
        self.path = path.strip("/")
        self.branch = branch
        self.interval_s = interval_s
        self.clock = clock
        self.prune = prune
        self.namespace = namespace
        self.on_invalid = on_invalid
        self.catalog = catalog
        root = cache_dir if cache_dir is not None else default_cache_dir()
        self.repo = GitRepo(repo_url, root, credentials, timeout_s=git_timeout_s)
        self.repo_url = self.repo.url
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._last: SyncReport | None = None
        self.last_error: str | None = None

    # --- public ----------------------------------------------------------------------------------

    @property
    def last_report(self) -> SyncReport | None:
        return self._last

    def trigger(self) -> None:
        """Sync now (the push webhook calls this); returns at once, the sync runs in :meth:`run`."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Sync every ``interval_s`` and on :meth:`trigger` until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            try:
                self.sync_once()
                self.last_error = None
            except ControlPlaneError as exc:
                self.last_error = str(exc)
                log.error("git source %s@%s: %s", self.repo_url, self.branch, exc)
            except Exception:  # the loop must survive anything
                self.last_error = "unexpected error (see the log)"
                log.exception("git source %s@%s crashed in a sync", self.repo_url, self.branch)
            deadline = time.monotonic() + self.interval_s
            while not stop.is_set() and not self._wake.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.25))

    def sync_once(self, *, force: bool = False) -> SyncReport:
        """Fetch, validate and apply once. Raises :class:`GitError` when git cannot be read."""
        with self._lock:
            tip = self.repo.fetch(self.branch)
            if tip is None:
                raise GitError(f"{self.repo_url} has no branch {self.branch!r}")
            last = self._last
            if not force and last is not None and last.commit == tip and last.clean:
                report = SyncReport(commit=tip, at=self.clock(), skipped=True)
            else:
                report = self._sync(tip)
            self._last = report
            return report

    # --- one sync --------------------------------------------------------------------------------

    def _source(self, file: str) -> str:
        return format_source(self.repo_url, file, self.branch)

    def _ours(self, annotations: Mapping[str, str]) -> str | None:
        """The file of an object this source applied (None when not ours)."""
        parsed = parse_source(annotations.get(SOURCE_ANNOTATION) or "")
        if parsed is None or parsed[0] != self.repo_url or parsed[2] != self.branch:
            return None
        file = parsed[1]
        if self.path and not (file == self.path or file.startswith(self.path + "/")):
            return None
        return file

    def _sync(self, tip: str) -> SyncReport:
        files = [f for f in self.repo.files(tip, self.path) if f.endswith(YAML_SUFFIXES)]
        desired: dict[tuple[str, str], _Desired] = {}
        invalid: dict[str, tuple[Problem, ...]] = {}
        named_in_invalid: dict[str, set[tuple[str, str]]] = {}
        for file in files:
            text = self.repo.read(tip, file) or ""
            docs, problems, names = self._read_file(file, text)
            for doc in docs:
                other = desired.get(doc.key)
                if other is not None:
                    problems.append(
                        Problem(
                            path="metadata.name",
                            message=f"ModelCanary {_name(doc.key)} is also defined in {other.file}",
                            file=file,
                        )
                    )
            if problems:
                invalid[file] = tuple(problems)
                named_in_invalid[file] = names
                continue
            for doc in docs:
                desired[doc.key] = doc
        managed = self._managed()
        applied: list[str] = []
        unchanged: list[str] = []
        errors: list[str] = []
        for key, doc in sorted(desired.items()):
            if self.namespaces is not None and key[0] not in self.namespaces:
                errors.append(
                    f"{_name(key)}: namespace {key[0]!r} is not watched by this controller "
                    f"(--namespace {', '.join(self.namespaces)}); not applied"
                )
                log.error("git source: %s from %s: %s", _name(key), doc.file, errors[-1])
                continue
            try:
                if self._apply(doc, tip, managed.get(key)):
                    applied.append(_name(key))
                else:
                    unchanged.append(_name(key))
            except ControlPlaneError as exc:
                errors.append(f"{_name(key)}: {exc}")
                log.error("git source: cannot apply %s from %s: %s", _name(key), doc.file, exc)
        for file, found in invalid.items():
            self._report_invalid(tip, file, found, named_in_invalid[file], managed)
        pruned, orphaned = self._orphans(desired, invalid, managed, errors)
        return SyncReport(
            commit=tip,
            at=self.clock(),
            applied=tuple(applied),
            unchanged=tuple(unchanged),
            invalid=invalid,
            pruned=tuple(pruned),
            orphaned=tuple(orphaned),
            errors=tuple(errors),
        )

    def _read_file(
        self, file: str, text: str
    ) -> tuple[list[_Desired], list[Problem], set[tuple[str, str]]]:
        """(documents to apply, problems, names the file mentions) of one file."""
        problems = check_text(text, file, self.catalog)
        try:
            documents = parse_text(text, file)
        except ControlPlaneError:
            return [], problems, set()  # not YAML: invalid (check_text said why)
        canaries = [d for d in documents if _is_canary(d.data)]
        if not canaries:
            return [], [], set()  # no ModelCanary here: not a canary file, ignored
        names: set[tuple[str, str]] = set()
        docs: list[_Desired] = []
        for doc in canaries:
            data: dict[str, Any] = dict(doc.data)  # type: ignore[call-overload]
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            name = meta.get("name") if isinstance(meta, dict) else None
            ns = (meta.get("namespace") if isinstance(meta, dict) else None) or self.namespace
            if isinstance(name, str) and isinstance(ns, str):
                names.add((ns, name))
                docs.append(_Desired(file, (ns, name), data, document_digest(data)))
        return docs, problems, names

    def _managed(self) -> dict[tuple[str, str], Obj]:
        """Every ModelCanary of the watched namespaces (all: the cluster), by (namespace, name)."""
        found: dict[tuple[str, str], Obj] = {}
        for namespace in self.namespaces or (None,):
            for obj in self.kube.list(API_VERSION, KIND, namespace):
                meta = obj.get("metadata") or {}
                found[(meta.get("namespace") or "", meta.get("name") or "")] = obj
        return found

    def _apply(self, doc: _Desired, tip: str, stored: Obj | None) -> bool:
        """Apply ``doc`` unless the stored object already holds it; True when written."""
        data = doc.data
        meta_in = data.get("metadata") or {}
        annotations = dict(meta_in.get("annotations") or {})
        labels = dict(meta_in.get("labels") or {})
        commit = tip
        if stored is not None:
            s_meta = stored.get("metadata") or {}
            s_ann: Mapping[str, str] = s_meta.get("annotations") or {}
            source = s_ann.get(SOURCE_ANNOTATION)
            if source not in (None, self._source(doc.file)) and self._ours(s_ann) is None:
                raise GitError(
                    f"{_name(doc.key)} was applied from {s_ann.get(SOURCE_ANNOTATION)}: "
                    "not taking it over"
                )
            if s_ann.get(SOURCE_ANNOTATION) is None and ARGOCD_TRACKING_ANNOTATION in s_ann:
                raise GitError(f"{_name(doc.key)} is managed by Argo CD: not taking it over")
            if s_ann.get(DIGEST_ANNOTATION) == doc.digest:
                commit = s_ann.get(COMMIT_ANNOTATION) or tip
                s_labels = s_meta.get("labels") or {}
                if (
                    stored.get("spec") == data.get("spec")
                    and s_ann.get(SOURCE_ANNOTATION) == self._source(doc.file)
                    and all(s_ann.get(k) == v for k, v in annotations.items())
                    and all(s_labels.get(k) == v for k, v in labels.items())
                ):
                    return False
        annotations.update(
            {
                SOURCE_ANNOTATION: self._source(doc.file),
                COMMIT_ANNOTATION: commit,
                DIGEST_ANNOTATION: doc.digest,
            }
        )
        metadata: dict[str, Any] = {
            "name": doc.key[1],
            "namespace": doc.key[0],
            "annotations": annotations,
        }
        if labels:
            metadata["labels"] = labels
        obj: Obj = {
            "apiVersion": data.get("apiVersion") or API_VERSION,
            "kind": KIND,
            "metadata": metadata,
            "spec": data.get("spec"),
        }
        self.kube.apply(obj, field_manager=FIELD_MANAGER)
        log.info("git source: applied %s from %s@%s", _name(doc.key), doc.file, tip[:12])
        return True

    def _report_invalid(
        self,
        tip: str,
        file: str,
        problems: tuple[Problem, ...],
        names: set[tuple[str, str]],
        managed: Mapping[tuple[str, str], Obj],
    ) -> None:
        for problem in problems:
            log.error("git source: %s", problem.format())
        shown = "; ".join(p.format() for p in problems[:MAX_EVENT_PROBLEMS])
        more = len(problems) - MAX_EVENT_PROBLEMS
        message = f"{file}@{tip[:12]} is invalid, the applied version stays: {shown}" + (
            f" (and {more} more)" if more > 0 else ""
        )
        targets = {
            key: obj
            for key, obj in managed.items()
            if key in names or self._ours(_annotations(obj)) == file
        }
        for obj in targets.values():
            try:
                self.kube.event(obj, "GitSyncFailed", message, "Warning")
            except ControlPlaneError as exc:
                log.warning("git source: cannot record an Event: %s", exc)
        if self.on_invalid is not None:
            try:
                self.on_invalid(file, list(problems))
            except Exception:  # an alert hook must not stop the sync
                log.exception("git source: the on_invalid hook failed")

    def _orphans(
        self,
        desired: Mapping[tuple[str, str], _Desired],
        invalid: Mapping[str, tuple[Problem, ...]],
        managed: Mapping[tuple[str, str], Obj],
        errors: list[str],
    ) -> tuple[list[str], list[str]]:
        pruned: list[str] = []
        orphaned: list[str] = []
        for key, obj in sorted(managed.items()):
            file = self._ours(_annotations(obj))
            if file is None or key in desired or file in invalid:
                continue
            if not self.prune:
                orphaned.append(_name(key))
                log.warning(
                    "git source: %s is no longer in git (%s); kept (pruning is off)",
                    _name(key),
                    file,
                )
                continue
            try:
                self.kube.delete(Ref.of(obj))
                pruned.append(_name(key))
                log.info("git source: deleted %s (gone from %s)", _name(key), file)
            except NotFound:
                pruned.append(_name(key))
            except KubeError as exc:
                errors.append(f"{_name(key)}: {exc}")
        return pruned, orphaned
