"""Words the spec's messages share: how a value is named, and "did you mean".

Owns :func:`describe` (``5`` -> ``integer 5`` in "got ..." phrases) and :func:`did_you_mean`, which
the rules (:mod:`controlplane.spec.rules`, :mod:`controlplane.validation`) and the YAML reader
(:mod:`controlplane.spec.load`) use; :mod:`controlplane.spec.pydantic_errors` (pydantic's errors
in our words) re-exports them. Pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["describe", "did_you_mean"]


def describe(value: object) -> str:
    """``5`` -> ``integer 5``; ``[1]`` -> ``a list``; used in "got ..." phrases."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'weight'?"`` when ``word`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
