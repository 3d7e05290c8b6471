"""Which git URLs the product reads and pushes: ``https://``, ``ssh://`` and ``user@host:path``.

Owns :data:`GIT_URL_PATTERN` (the CRD pattern of ``spec.gitWriteBack.repo``) and
:func:`git_url_problem`. Refused: local paths and ``file://`` (the controller's own files),
``http://``, ``git://``, ``ext::`` / ``fd::`` and a host or user starting with ``-`` (an ssh
option). Pure; used for every remote a :class:`~controlplane.gitops.repo.GitRepo` is made for.
"""

from __future__ import annotations

import re

GIT_URL_PATTERN = (
    r"^(?:(?:https|ssh)://[^\s/?#-][^\s/?#]*(?:/\S*)?"
    r"|[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s-]\S*)$"
)
_GIT_URL = re.compile(GIT_URL_PATTERN)
ALLOWED = "https://HOST/PATH, ssh://[USER@]HOST/PATH or USER@HOST:PATH"


def git_url_problem(url: str) -> str | None:
    """Why ``url`` is not a git remote the product uses (see the module), None when it is."""
    if _GIT_URL.match(url):
        return None
    scheme, sep, _ = url.partition("://")
    if sep and scheme in ("https", "ssh"):
        return f"{url[:64]!r} is not a {scheme} git URL (a host, not starting with '-'): {ALLOWED}"
    if sep and scheme:
        shown = scheme if len(scheme) <= 16 else scheme[:16] + "..."
        return f"{shown}:// git URLs are not used, only {ALLOWED}"
    return f"{url[:64]!r} is not a git URL the controller uses: {ALLOWED}"


def checked_git_url(value: str) -> str:
    """``value`` when it is a git remote the product uses; ValueError with the reason when not
    (the validator of ``spec.gitWriteBack.repo`` in the models)."""
    problem = git_url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value
