"""The fake API server's Service proxy: a GET sent on to the HTTP server a test named.

Owns :func:`proxy_get`, what :meth:`harness.kube.fake.FakeKube.service_get` does once it has
found the Service: kube-apiserver's ``services/{name}:{port}/proxy/{path}`` sent to an endpoint.
The fake has no pods, so a test names the endpoint (:meth:`FakeKube.serve_service`), and the
answers are shaped as the real server's are (tests/kube/test_kube_contract.py holds both to the
same tests): no endpoint is a 503, an endpoint that cannot be reached a 503 that says why, and
an endpoint's answer passes through with its own status.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from controlplane.errors import KubeError


def proxy_get(
    base_url: str | None,
    service: str,
    path: str,
    params: Mapping[str, str],
    timeout_s: float,
) -> bytes:
    """The body of ``GET base_url + path?params``; :class:`KubeError` as the real proxy
    answers when there is no endpoint (``base_url`` None), when it cannot be reached, or when it
    answers other than 2xx."""
    if base_url is None:
        raise KubeError(f'503 ServiceUnavailable: no endpoints available for service "{service}"')
    query = urllib.parse.urlencode(list(params.items()))
    url = f"{base_url}{path}" + (f"?{query}" if query else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        raise KubeError(f"{exc.code} {exc.reason}: {body}") from None
    except OSError as exc:  # refused, reset, a timeout: the proxy could not reach the endpoint
        raise KubeError(f"503 ServiceUnavailable: error trying to reach service: {exc}") from None
