"""The git push webhook: verify that GitHub or GitLab sent it, then tell the git source.

Owns :func:`verify_push` (GitHub's body HMAC or GitLab's token, in constant time) and
:func:`event_kind` (only pushes reach the git source). Called by the webhook routes. See
docs/api.md, "Git push webhook".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

from controlplane.errors import ControlPlaneError

EventKind = Literal["push", "ping", "other"]
PUSH_EVENTS = frozenset({"push", "Push Hook", "Tag Push Hook"})


class BadSignature(ControlPlaneError):
    """The webhook is not from who it claims to be; ``reason`` says why (the API answers 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_push(secret: str | None, headers: Mapping[str, str], body: bytes) -> str:
    """Which forge sent it (``github`` / ``gitlab``); :class:`BadSignature` when unverified.

    ``headers`` must be case-insensitive (Starlette's are)."""
    if not secret:
        raise BadSignature("no git webhook secret is configured: every webhook is refused")
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        if hmac.compare_digest(signature.strip(), github_signature(secret, body)):
            return "github"
        raise BadSignature("X-Hub-Signature-256 does not match the body and the configured secret")
    token = headers.get("x-gitlab-token")
    if token is not None:
        if hmac.compare_digest(token.encode("utf-8"), secret.encode("utf-8")):
            return "gitlab"
        raise BadSignature("X-Gitlab-Token does not match the configured secret")
    raise BadSignature("neither X-Hub-Signature-256 (GitHub) nor X-Gitlab-Token (GitLab) is set")


def event_kind(headers: Mapping[str, str]) -> EventKind:
    """``push`` for GitHub ``push`` / GitLab ``Push Hook`` (or when the forge names no event)."""
    name = headers.get("x-github-event") or headers.get("x-gitlab-event")
    if name is None or name in PUSH_EVENTS:
        return "push"
    if name == "ping":
        return "ping"
    return "other"
