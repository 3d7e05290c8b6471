"""Sessions that stay on one variant, with no state in the data plane (pure).

Owns how ``spec.traffic.session`` pins a session to a variant on a router that matches headers
by regular expression: the session key (a header, or a cookie's value) is bucketed by its last
two characters read as hex digits (:data:`BUCKETS` buckets: random keys such as UUIDs and hex
tokens fill them evenly), and at a step of weight ``w`` the first ``round(w * BUCKETS / 100)``
buckets, in a fixed order (:func:`candidate_buckets`), go to the candidate, the others to the
stable. The order never changes, so a step that raises the weight only moves sessions from the
stable to the candidate, each at most once per step change, and a rollback (weight 0) returns
every candidate session to the stable. A request without the key, or whose key does not end in
two hex digits, is split by the weights as before.

:func:`key_matches` gives the header matches of each variant's buckets, as a regular
expression that is the same under full-match (Envoy's RE2 ``safe_regex``) and search
(Traefik v3.6.12's ``HeaderRegexp``, Go's ``regexp.MatchString``) semantics. Called by the
``gateway-api`` router (:func:`controlplane.routing.gateway_api.build_httproute`). See
docs/routing.md, "Sessions that stay on one variant".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `kubectl canary list` draws the buckets without loading the spec's models
    from controlplane.spec.models import SessionSpec

BUCKETS = 256
"""Two hex digits: a session's share of a variant moves in steps of 1/256 (0.39 %)."""
HEX = "0123456789abcdef"


def candidate_buckets(weight: int) -> range:
    """The buckets whose sessions the candidate serves at ``weight`` percent: the first
    ``round(weight * BUCKETS / 100)`` (so nested: a higher weight keeps every lower one's)."""
    if not 0 <= weight <= 100:
        raise ValueError(f"weight {weight} is not a percentage")
    return range(round(weight * BUCKETS / 100))


def bucket_of(key: str) -> int | None:
    """The bucket of a session key: its last two characters as hex (either case), None when
    they are not hex digits (the request is split by the weights)."""
    tail = key[-2:].lower()
    if len(tail) != 2 or any(c not in HEX for c in tail):
        return None
    return int(tail, 16)


def _class(low: int, high: int) -> str:
    """A character class of the hex digits ``low`` to ``high``, both cases."""
    if low == high:
        digit = HEX[low]
        return digit if digit.isdigit() else f"[{digit}{digit.upper()}]"
    parts: list[str] = []
    digits = [HEX[i] for i in range(low, high + 1)]
    numbers = [d for d in digits if d.isdigit()]
    letters = [d for d in digits if not d.isdigit()]
    if numbers:
        parts.append(numbers[0] if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}")
    for group in (letters, [d.upper() for d in letters]):
        if group:
            parts.append(group[0] if len(group) == 1 else f"{group[0]}-{group[-1]}")
    return "[" + "".join(parts) + "]"


def _tails(buckets: Sequence[int]) -> list[str]:
    """Alternatives matching the two-digit tails of ``buckets`` (a contiguous range), a few
    character classes rather than one alternative per bucket."""
    if not buckets:
        return []
    first, last = buckets[0], buckets[-1]
    high_first, high_last = first // 16, last // 16
    if high_first == high_last:
        return [_class(high_first, high_first) + _class(first % 16, last % 16)]
    out = []
    if first % 16:
        out.append(_class(high_first, high_first) + _class(first % 16, 15))
        high_first += 1
    tail = []
    if last % 16 != 15:
        tail.append(_class(high_last, high_last) + _class(0, last % 16))
        high_last -= 1
    if high_first <= high_last:
        out.append(_class(high_first, high_last) + _class(0, 15))
    return out + tail


def tail_regex(buckets: Sequence[int], prefix: str = ".*", suffix: str = "") -> str | None:
    """A regular expression matching a value whose last two characters (before ``suffix``) are
    the hex digits of one of ``buckets`` (a contiguous range), None for no bucket."""
    tails = _tails(list(buckets))
    if not tails:
        return None
    body = tails[0] if len(tails) == 1 else "(?:" + "|".join(tails) + ")"
    return f"^{prefix}{body}{suffix}$"


Match = dict[str, str]


def key_matches(session: SessionSpec, weight: int) -> tuple[Match | None, Match | None]:
    """The header matches (``{"type": "RegularExpression", "name", "value"}``) of the sessions
    the candidate serves at ``weight`` (None at 0 %) and of those the stable serves (None at
    100 %), on the key's header, or on the ``Cookie`` header for a cookie."""
    mine = candidate_buckets(weight)
    theirs = range(mine.stop, BUCKETS)
    if session.cookie is not None:
        name = "cookie"
        prefix, suffix = f"(?:.*;)?\\s*{session.cookie}=[^;]*", "\\s*(?:;.*)?"
    else:
        name = str(session.header).lower()
        prefix, suffix = ".*", ""

    def match(buckets: range) -> Match | None:
        value = tail_regex(buckets, prefix, suffix)
        return (
            None if value is None else {"type": "RegularExpression", "name": name, "value": value}
        )

    return match(mine), match(theirs)


def session_key(session: SessionSpec, headers: Mapping[str, str]) -> str | None:
    """A request's session key: its header (by name, any case), or its cookie's value from the
    ``Cookie`` header; None when it has none."""
    wanted = "cookie" if session.cookie is not None else str(session.header).lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if value is None or session.cookie is None:
        return value
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except CookieError:
        return None
    morsel = jar.get(session.cookie)
    return None if morsel is None else morsel.value


def pinned(session: SessionSpec, weight: int, headers: Mapping[str, str]) -> bool | None:
    """Whether a request's session is the candidate's at ``weight`` (True), the stable's
    (False), or has no bucket (None: split by the weights): the rule the rendered routes
    express, for a router that decides per request in code (the local stack's)."""
    key = session_key(session, headers)
    bucket = None if key is None else bucket_of(key.strip())
    if bucket is None:
        return None
    return bucket in candidate_buckets(weight)
