"""What a variant's serving objects and pods say of its start (pure).

Owns three readings: :func:`load_failure`, what KServe writes on an InferenceService whose model
did not load; :func:`cannot_start`, whether the pods of a variant say it cannot serve, so
certainly that waiting for the progress deadline would only delay the rollback (a crash loop
past :data:`CRASH_LOOP_RESTARTS` restarts, an image that does not exist); and :func:`serving`,
whether one of its pods serves while its object is not Ready (one pod of two replaced). The
first two keep the one line of an engine's last words that names the cause
(:func:`root_cause`). Called by :mod:`controlplane.controller.children`, which reads the
objects. See docs/rollback.md, "A candidate that cannot start".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

FAILURE_CHARS = 300
"""The most of a load failure's message a rollback reason carries."""
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): ")
"""A Python exception's last traceback line: ``torch.OutOfMemoryError: ...``."""
WRAPPER = "see root cause above"
"""What vLLM's API server says when the engine core died of something it printed before."""

CRASH_LOOP_RESTARTS = 3
"""Restarts of one container, never ready since, after which its crash loop is certain. The
kubelet (Kubernetes v1.34.10, ``pkg/kubelet/kubelet.go``: ``backOffPeriod`` 10 s, doubled at
each crash up to ``MaxCrashLoopBackOff``, 300 s) restarts a crashing container after 10, 20 and
40 s: three restarts are the same start failing four times in a row, about 70 s plus four
starts, where the default progress deadline waits 30 minutes. One crash can be the node's (a
GPU another process held); four in a row are the variant's."""

IMAGE_NEVER = frozenset({"InvalidImageName", "ErrImageNeverPull"})
"""Waiting reasons no retry changes: the image reference cannot be parsed, or the policy says
never to pull an image the node does not have (kubelet v1.34, ``pkg/kubelet/images/types.go``)."""
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})
"""Waiting reasons of a pull that failed; certain only when the registry said the image is not
there (:data:`IMAGE_MISSING`), since a registry that is down or slow may answer later."""
IMAGE_MISSING = re.compile(r"\bnot found\b|manifest unknown|name unknown", re.IGNORECASE)
"""How a pull says the reference does not exist. containerd turns a registry's 404 into
``<ref>: not found`` and wraps it as ``failed to resolve reference "<ref>": <ref>: not found``
(containerd v1.6.20, the node's Debian package: ``remotes/docker/resolver.go`` and ``pull.go``;
v2.1.4 alike in ``core/remotes/docker/resolver.go`` and ``client/pull.go``); runtimes that pass
the registry's own error on say the distribution API's ``MANIFEST_UNKNOWN`` or ``NAME_UNKNOWN``
("manifest unknown", "name unknown")."""


def root_cause(log: str) -> str | None:
    """The line of the end of an engine's log that says why it died: the last exception line
    (``torch.OutOfMemoryError: CUDA out of memory. ...``) that is not a wrapper pointing above
    it, else the last exception line, else the last non-empty line, else None.

    vLLM 0.24.0 dies of an out-of-memory load with the engine core's traceback, ending in torch's
    ``torch.OutOfMemoryError``, followed by the API server's ``RuntimeError: Engine core
    initialization failed. See root cause above. ...`` (``v1/engine/utils.py``): its last line
    names no cause, the exception line before it does."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errors = [ln for ln in lines if EXCEPTION_LINE.match(ln)]
    causes = [ln for ln in errors if WRAPPER not in ln.lower()]
    for found in (causes, errors, lines):
        if found:
            return found[-1]
    return None


def _cut(text: str) -> str:
    return text if len(text) <= FAILURE_CHARS else text[: FAILURE_CHARS - 1] + "\u2026"


def load_failure(obj: Mapping[str, Any]) -> str | None:
    """What KServe says of a served object whose model failed to load, else None.

    KServe v0.20.0 (``PropagateModelStatus`` in ``pkg/apis/serving/v1beta1/
    inference_service_status.go``) sets ``status.modelStatus.states.targetModelState`` to
    ``FailedToLoad`` (and ``transitionStatus`` to ``BlockedByFailedLoad``) with
    ``lastFailureInfo`` {``reason: ModelLoadFailed``, ``message``, ``exitCode``} when the
    predictor's ``kserve-container`` terminated with an error or waits in
    ``CrashLoopBackOff``; ``message`` is the container's termination message, which the
    rendered container fills from the end of its log (``terminationMessagePolicy:
    FallbackToLogsOnError``, :func:`controlplane.serving.render.predictor_spec`). One line of
    it is kept (:func:`root_cause`), cut at :data:`FAILURE_CHARS`."""
    status = obj.get("status") or {}
    model = status.get("modelStatus") or {}
    states = model.get("states") or {}
    target = states.get("targetModelState") if isinstance(states, Mapping) else None
    if target != "FailedToLoad" and model.get("transitionStatus") != "BlockedByFailedLoad":
        return None
    info = model.get("lastFailureInfo") or {}
    if not isinstance(info, Mapping):
        info = {}
    name = obj.get("metadata", {}).get("name", "?")
    text = f"{obj.get('kind', 'object')} {name} failed to load"
    details = [str(info["reason"])] if info.get("reason") else []
    if info.get("exitCode") is not None:
        details.append(f"exit code {info['exitCode']}")
    if details:
        text += f" ({', '.join(details)})"
    cause = root_cause(str(info.get("message") or ""))
    if cause:
        text += f": {_cut(cause)}"
    return text


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    found: list[Mapping[str, Any]] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        found.extend(s for s in status.get(key) or [] if isinstance(s, Mapping))
    return found


def serving(pods: Sequence[Mapping[str, Any]]) -> bool:
    """Whether one of a variant's pods serves: it is Ready and not being deleted (its Service
    then has a ready endpoint, so the gateway routes its share to a server, not to an error)."""
    return any(_ready(p) for p in _live(pods))


def _live(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pods not being deleted: a terminating pod is the old template's, or going."""
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def _ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _exit(terminated: Mapping[str, Any]) -> str:
    """``exit code 1`` (or ``OOMKilled``, a reason other than ``Error``), then the cause from
    the termination message."""
    reason = terminated.get("reason")
    code = terminated.get("exitCode")
    said = str(reason) if reason and reason not in ("Error", "Completed") else f"exit code {code}"
    cause = root_cause(str(terminated.get("message") or ""))
    return f"{said}: {_cut(cause)}" if cause else said


def container_failure(status: Mapping[str, Any], restarts: int = CRASH_LOOP_RESTARTS) -> str | None:
    """Why one container (an entry of a pod's ``containerStatuses``) certainly cannot start, in
    a line, else None: an image that cannot be had (:data:`IMAGE_NEVER`, or a pull the registry
    answered with not found), or a crash loop of ``restarts`` restarts or more of a container
    not ready since (with its last exit: the reason, such as ``OOMKilled``, or the exit code,
    and the cause from its termination message)."""
    name = status.get("name", "?")
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    message = str(waiting.get("message") or "")
    if reason in IMAGE_NEVER or (reason in IMAGE_PULL and IMAGE_MISSING.search(message)):
        said = f"container {name}: {reason}"
        return f"{said}: {_cut(message)}" if message else said
    count = status.get("restartCount")
    if status.get("ready") or not isinstance(count, int) or count < restarts:
        return None
    if reason != "CrashLoopBackOff" and not state.get("terminated"):
        return None  # running again: the next reading decides
    last = state.get("terminated") or (status.get("lastState") or {}).get("terminated") or {}
    loop = f"container {name} restarted {count} times"
    if reason:
        loop += f" ({reason})"
    return f"{loop}, last {_exit(last)}" if last else loop


def cannot_start(
    pods: Sequence[Mapping[str, Any]], restarts: int = CRASH_LOOP_RESTARTS
) -> str | None:
    """Why a variant certainly cannot serve, read from its pods, else None: a pod with a
    container that cannot start (:func:`container_failure`) while none of the variant's pods is
    ready (a ready pod means the variant can start: one node's fault is not the variant's). Pods
    being deleted are the old template's and do not count. ``"pod P: container C ..."``."""
    if serving(pods):
        return None
    live = _live(pods)
    for pod in sorted(live, key=lambda p: str((p.get("metadata") or {}).get("name", ""))):
        for status in _statuses(pod):
            why = container_failure(status, restarts)
            if why is not None:
                return f"pod {(pod.get('metadata') or {}).get('name', '?')}: {why}"
    return None
