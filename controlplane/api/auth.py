"""Who is calling the controller's HTTP API, and may they do what they ask.

Owns :class:`Authenticator`: a static token (constant-time) or a TokenReview authenticates; a
SubjectAccessReview on ``modelcanaries`` authorizes. Answers are cached for ``ttl_s``, tokens by
their SHA-256 only; a review the API server cannot answer raises
:class:`~controlplane.errors.KubeError` (503). See docs/api.md, "Authentication and authorisation".
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.errors import ControlPlaneError, KubeError, UsageError
from controlplane.kube.client import KubeClient
from controlplane.spec.models import API_GROUP

RESOURCE = "modelcanaries"
STATIC_USER = "static-token"
DEFAULT_TTL_S = 10.0


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``static`` callers (the static token) may do everything."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    static: bool = False


@dataclass(frozen=True)
class Decision:
    """Whether ``identity`` may do what it asked, and why (the API server's reason)."""

    allowed: bool
    reason: str


class Unauthenticated(ControlPlaneError):
    """No usable credentials; ``reason`` says what was wrong (the API answers 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TTLCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float], size: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.size = size
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            if hit[0] <= self.clock():
                del self._items[key]
                return None
            return hit[1]

    def put(self, key: Hashable, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._items) >= self.size:
                now = self.clock()
                self._items = {k: v for k, v in self._items.items() if v[0] > now}
                if len(self._items) >= self.size:
                    self._items.clear()
            self._items[key] = (self.clock() + self.ttl_s, value)


def read_token_file(path: str | Path) -> str:
    """The static token in ``path`` (a mounted Secret key), stripped; UsageError when unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"--api-token-file: cannot read {path}: {exc.strerror or exc}") from None
    if not token:
        raise UsageError(f"--api-token-file: {path} is empty")
    return token


class Authenticator:
    """Bearer-token authentication and SubjectAccessReview authorization (module docstring).

    ``static_token``: accepted as an all-powerful identity, named ``static_user`` (a local
    server names its user: ``kubectl canary dashboard``'s kubeconfig user). ``kube``: when
    given, other tokens go to TokenReview and non-static callers to SubjectAccessReview; without
    it only the static token is accepted. ``audiences``: passed to TokenReview when set.
    """

    def __init__(
        self,
        *,
        static_token: str | None = None,
        kube: KubeClient | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        audiences: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        static_user: str = STATIC_USER,
    ) -> None:
        if not static_token and kube is None:
            raise UsageError("the API needs a static token or a Kubernetes client to check tokens")
        self.static_token = static_token or None
        self.static_user = static_user
        self.kube = kube
        self.audiences = audiences
        self._tokens = _TTLCache(ttl_s, clock)
        self._decisions = _TTLCache(ttl_s, clock)

    def authenticate(self, token: str | None) -> Identity:
        """The caller of ``token``; :class:`Unauthenticated` with the reason otherwise."""
        if not token:
            raise Unauthenticated("no bearer token: send 'Authorization: Bearer <token>'")
        if self.static_token is not None and hmac.compare_digest(
            token.encode("utf-8"), self.static_token.encode("utf-8")
        ):
            return Identity(self.static_user, static=True)
        if self.kube is None:
            raise Unauthenticated("invalid bearer token")
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        cached = self._tokens.get(digest)
        if cached is None:
            cached = self._token_review(token)
            self._tokens.put(digest, cached)
        if isinstance(cached, str):
            raise Unauthenticated(cached)
        identity: Identity = cached
        return identity

    def _token_review(self, token: str) -> Identity | str:
        assert self.kube is not None
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = list(self.audiences)
        answer = self.kube.create(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        )
        status = answer.get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            error = status.get("error") or "the API server did not authenticate it"
            return f"invalid bearer token: {error}"
        return Identity(
            str(user["username"]),
            str(user.get("uid") or ""),
            tuple(str(g) for g in user.get("groups") or []),
        )

    def authorize(
        self, identity: Identity, verb: str, namespace: str | None, name: str | None = None
    ) -> Decision:
        """May ``identity`` ``verb`` modelcanaries (named ``name``) in ``namespace`` (None: all)?"""
        if identity.static:
            return Decision(True, "static token")
        if self.kube is None:  # unreachable: only the static identity exists without a client
            return Decision(False, "no Kubernetes client to review access")
        key = (identity.username, identity.groups, verb, namespace or "", name or "")
        cached = self._decisions.get(key)
        if cached is None:
            cached = self._access_review(identity, verb, namespace, name)
            self._decisions.put(key, cached)
        decision: Decision = cached
        return decision

    def _access_review(
        self, identity: Identity, verb: str, namespace: str | None, name: str | None
    ) -> Decision:
        assert self.kube is not None
        attributes: dict[str, Any] = {
            "group": API_GROUP,
            "resource": RESOURCE,
            "verb": verb,
            "namespace": namespace or "",
        }
        if name:
            attributes["name"] = name
        spec: dict[str, Any] = {
            "user": identity.username,
            "groups": list(identity.groups),
            "resourceAttributes": attributes,
        }
        if identity.uid:
            spec["uid"] = identity.uid
        answer = self.kube.create(
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        )
        status = answer.get("status")
        if not isinstance(status, dict):
            raise KubeError("the API server answered a SubjectAccessReview without a status")
        where = f'in namespace "{namespace}"' if namespace else "in all namespaces"
        what = f"{verb} {RESOURCE}.{API_GROUP}{f' {name!r}' if name else ''} {where}"
        reason = str(status.get("reason") or status.get("evaluationError") or "")
        if status.get("allowed") and not status.get("denied"):
            return Decision(True, reason or f"allowed to {what}")
        text = f'user "{identity.username}" may not {what}'
        return Decision(False, f"{text}: {reason}" if reason else text)
