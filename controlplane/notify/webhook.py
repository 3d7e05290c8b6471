"""The generic JSON webhook: payload, HMAC-SHA256 signature and its verification.

Owns the signing scheme (the timestamp is signed with the body so receivers can refuse replays)
and :func:`verify_signature`, usable as-is by Python receivers. Pure. The headers and the scheme:
docs/alerts.md, "Generic webhook (signed JSON)".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from controlplane.notify.alert import Alert

SIGNATURE_HEADER = "X-Canary-Signature"
TIMESTAMP_HEADER = "X-Canary-Timestamp"
DELIVERY_HEADER = "X-Canary-Delivery"
EVENT_HEADER = "X-Canary-Event"
DEFAULT_TOLERANCE_S = 300.0


def webhook_body(alert: Alert) -> bytes:
    """The exact bytes posted (and signed)."""
    return json.dumps(alert.to_json(), separators=(",", ":"), sort_keys=True).encode()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """``sha256=<hex>`` over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_headers(
    alert: Alert, body: bytes, secret: bytes | None, timestamp: int
) -> dict[str, str]:
    """Headers of one attempt; signed when ``secret`` is given."""
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: alert.kind,
        DELIVERY_HEADER: alert.fingerprint,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body, timestamp)
    return headers


def verify_signature(
    secret: bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` made within ``tolerance_s`` of
    ``now``. Header names are matched case-insensitively. Never raises on malformed input."""
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    if not signature.startswith("sha256=") or not stamp.isdigit():
        return False
    if abs(now - int(stamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, int(stamp)), signature)
