"""Kubernetes names: what a name or namespace may be before it reaches the API server.

Owns the DNS-1123 rules (``k8s.io/apimachinery/pkg/util/validation`` v0.34) and the API server's
path-segment rule (``pkg/api/validation/path``, ``IsValidPathSegmentName``), widened with ``?``
and ``#``. A name breaking them is :class:`~controlplane.errors.InvalidName` before any request:
a client collapses ``..``, so a crafted name would address another namespace's object. Called at
every boundary where a name arrives, and by both Kubernetes adapters on every call. Pure.
"""

from __future__ import annotations

import re

from controlplane.errors import InvalidName

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL = re.compile(LABEL_PATTERN)
_SUBDOMAIN = re.compile(SUBDOMAIN_PATTERN)
UNSAFE_IN_PATH = ("/", "%", "?", "#")
"""Characters that change what a request path addresses (the API server refuses ``/`` and ``%``
in names itself; ``?`` and ``#`` would end the path in any HTTP client)."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_label(value: object) -> bool:
    """True for a DNS-1123 label: at most 63 of ``a-z0-9-``, alphanumeric at both ends."""
    return isinstance(value, str) and len(value) <= LABEL_MAX and bool(_LABEL.fullmatch(value))


def is_subdomain(value: object) -> bool:
    """True for a DNS-1123 subdomain: labels joined by dots, at most 253 characters."""
    return (
        isinstance(value, str) and len(value) <= SUBDOMAIN_MAX and bool(_SUBDOMAIN.fullmatch(value))
    )


def check_label(value: object, what: str = "namespace") -> str:
    """``value`` when it is a DNS-1123 label, else :class:`InvalidName` naming ``what``."""
    if not is_label(value):
        raise InvalidName(
            f"{what} {_shown(value)} is not a valid Kubernetes name: at most {LABEL_MAX} "
            "lower-case letters, digits and '-', starting and ending with a letter or digit"
        )
    return str(value)


def check_subdomain(value: object, what: str = "name") -> str:
    """``value`` when it is a DNS-1123 subdomain, else :class:`InvalidName` naming ``what``."""
    if not is_subdomain(value):
        raise InvalidName(
            f"{what} {_shown(value)} is not a valid Kubernetes name: at most {SUBDOMAIN_MAX} "
            "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        )
    return str(value)


def check_path_segment(value: object, what: str = "name") -> str:
    """``value`` when it is safe as one segment of a request path, else :class:`InvalidName`.

    The API server's own rule for every object name (``IsValidPathSegmentName``) plus ``?`` and
    ``#``; also refuses an empty name and any ``..``. Looser than DNS-1123 (Events, RBAC objects
    and Leases may hold ``:`` or upper case), so the adapters apply it to every kind.
    """
    if not isinstance(value, str) or not value:
        raise InvalidName(f"{what} {_shown(value)} is empty or not a string")
    if value in (".", "..") or ".." in value:
        raise InvalidName(f"{what} {_shown(value)} may not contain '..'")
    bad = [c for c in UNSAFE_IN_PATH if c in value]
    if bad or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        shown = ", ".join(repr(c) for c in bad) or "a control character"
        raise InvalidName(f"{what} {_shown(value)} may not contain {shown}")
    return value


def check_ref_names(namespace: str | None, name: str | None) -> None:
    """The adapters' last fence: a namespace (when given) is a DNS-1123 label and a name (when
    given) a safe path segment; else :class:`InvalidName` before any request is made."""
    if namespace is not None:
        check_label(namespace, "namespace")
    if name is not None:
        check_path_segment(name, "name")
