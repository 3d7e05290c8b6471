"""``kubectl canary list`` without the Kubernetes client: one kubeconfig, plain HTTPS GETs.

Owns :func:`lister`, which reads the kubeconfig the way the ``kubernetes`` Python client 37.0.1
does (``kubernetes/config/kube_config.py``, ``KubeConfigLoader``: ``_load_authentication``,
``_load_cluster_info``; ``kubernetes/config/exec_provider.py``, ``ExecProvider.run``) and
returns a :class:`DirectLister`, or None for whatever it does not handle, so that the caller
falls back to :class:`~controlplane.kube.real.RealKube` and the client. Importing the client
takes longer than a whole ``kubectl version`` (docs/cli.md, "Start-up"), so ``list`` asks the
API server with the standard library (``http.client``, ``ssl``) when it can (issue 41).

Handled, as the client handles them: ``token`` / ``tokenFile``; ``client-certificate(-data)``
and ``client-key(-data)``; ``certificate-authority(-data)`` (else the system's CAs, as urllib3
2 uses); ``insecure-skip-tls-verify``; ``username`` / ``password``; an ``exec`` credential
plugin answering a token or a client certificate (run as the client runs it: the kubeconfig's
directory as its working directory, ``KUBERNETES_EXEC_INFO``, ``provideClusterInfo``; a plugin
that fails is an error here, where the client logs it and goes on without credentials). Left to
the client: several kubeconfig files (``KUBECONFIG`` merging), no kubeconfig (in-cluster), an
unknown context, cluster or user, ``auth-provider``, ``proxy-url``, ``tls-server-name``, and a
proxy from the environment for the server's scheme. Answers are read as
:class:`~controlplane.kube.real.RealKube` reads them
(:func:`~controlplane.kube.answers.to_kube_error`,
``Retry-After``, paging, a path the server does not serve is
:func:`~controlplane.kube.client.unserved`). Tests: tests/kube/test_kube_direct.py (offline) and
tests/cli/test_cli_real_kube.py (a real kube-apiserver: token, client certificate, exec plugin,
a 403).
"""

from __future__ import annotations

import base64
import builtins
import http.client
import json
import os
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from controlplane import __version__
from controlplane.errors import KubeError, NotFound
from controlplane.kube.answers import (
    CONNECT_ATTEMPTS,
    DEFAULT_PAGE_SIZE,
    MAX_RETRIES,
    NO_ROUTE,
    retry_after,
    selector_string,
    to_kube_error,
)
from controlplane.kube.client import Obj, unserved
from controlplane.spec.constants import API_VERSION, KIND, PLURAL
from controlplane.spec.names import check_ref_names

PLURALS: dict[tuple[str, str], str] = {(API_VERSION, KIND): PLURAL}
"""The kinds a :class:`DirectLister` lists, with their resource names (no discovery here)."""


def read_kubeconfig(path: Path) -> Any:
    """The kubeconfig at ``path`` read as the client reads it (PyYAML's safe loader), or None
    when it cannot be read or parsed."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return None


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask: the server's scheme, host, port and path prefix, the TLS context
    (None for http) and the ``Authorization`` header (empty for none)."""

    scheme: str
    host: str
    port: int
    prefix: str
    tls: ssl.SSLContext | None = None
    authorization: str = ""


def _named(entries: Any, name: Any) -> Mapping[str, Any] | None:
    """The body (``key`` of the entry) named ``name`` in a kubeconfig list, or None."""
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry
    return None


def _proxied(scheme: str) -> bool:
    """A proxy from the environment applies to ``scheme`` (the client's ``_env_proxy``, before
    ``no_proxy``): left to the client, which speaks to proxies."""
    if sys.platform not in ("darwin", "win32") and not any(
        key.lower().endswith("_proxy") for key in os.environ
    ):  # getproxies() reads only *_proxy variables there: no need to import urllib.request
        return False
    from urllib.request import getproxies

    proxies = getproxies()
    return bool(proxies.get(scheme) or proxies.get("all"))


def _bytes(body: Mapping[str, Any], key: str, base: Path, *, encoded: bool = True) -> bytes | None:
    """``key-data`` (base64 when ``encoded``) else the file ``key`` (relative to ``base``), as
    the client's ``FileOrData`` prefers them; None when neither is set."""
    data = body.get(f"{key}-data")
    if data:
        return base64.standard_b64decode(data) if encoded else str(data).encode()
    name = body.get(key)
    if name:
        return (base / str(name)).read_bytes()
    return None


def _exec_status(spec: Mapping[str, Any], cluster: Mapping[str, Any], base: Path) -> Any:
    """The ``status`` an exec credential plugin answers, run as ``ExecProvider.run`` runs it
    (ValueError with the client's words when it fails)."""
    import subprocess

    for key in ("command", "apiVersion"):
        if key not in spec:
            raise ValueError(f"exec: malformed request. missing key {key!r}")
    interactive = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    info: dict[str, Any] = {
        "apiVersion": spec["apiVersion"],
        "kind": "ExecCredential",
        "spec": {"interactive": interactive},
    }
    if spec.get("provideClusterInfo"):
        info["spec"]["cluster"] = dict(cluster)
        for extension in cluster.get("extensions") or []:
            if extension.get("name") == "client.authentication.k8s.io/exec":
                info["spec"]["cluster"]["config"] = extension.get("extension")
                break
    env = dict(os.environ)
    env.update({str(e["name"]): str(e["value"]) for e in spec.get("env") or []})
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    done = subprocess.run(
        [str(spec["command"]), *(str(a) for a in spec.get("args") or [])],
        stdout=subprocess.PIPE,
        stderr=None if interactive else subprocess.PIPE,
        cwd=str(base) or None,
        env=env,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        stderr = (done.stderr or "").strip()
        raise ValueError(
            f"exec: process returned {done.returncode}" + (f". {stderr}" if stderr else "")
        )
    try:
        data = json.loads(done.stdout)
    except ValueError as exc:
        raise ValueError(f"exec: failed to decode process output: {exc}") from None
    for key in ("apiVersion", "kind", "status"):
        if not isinstance(data, dict) or key not in data:
            raise ValueError(f"exec: malformed response. missing key {key!r}")
    if data["apiVersion"] != spec["apiVersion"]:
        raise ValueError(
            f"exec: plugin api version {data['apiVersion']} does not match {spec['apiVersion']}"
        )
    return data["status"]


def _tls(
    cluster: Mapping[str, Any], cert: bytes | None, key: bytes | None, base: Path
) -> ssl.SSLContext:
    """The cluster's CA (data, else a file, else the system's), ``insecure-skip-tls-verify``, and
    the client certificate and key (a certificate without a key: its file holds both)."""
    data = cluster.get("certificate-authority-data")
    named = cluster.get("certificate-authority")
    context = ssl.create_default_context(
        cafile=str(base / str(named)) if named and not data else None,
        cadata=base64.standard_b64decode(data).decode() if data else None,
    )
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:  # load_cert_chain reads files: written, loaded and removed at once
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "cert").write_bytes(cert)
            if key:
                (Path(tmp) / "key").write_bytes(key)
            context.load_cert_chain(Path(tmp) / "cert", Path(tmp) / "key" if key else None)
    return context


def endpoint(paths: list[Path], context: str | None) -> Endpoint | None:
    """The endpoint the kubeconfig ``paths`` name for ``context`` (the current one when None),
    or None when the client must do it (see the module's docstring). Raises :class:`KubeError`
    for a credential plugin that fails or a file the kubeconfig names that cannot be read."""
    if len(paths) != 1:
        return None
    config = read_kubeconfig(paths[0])
    if not isinstance(config, Mapping):
        return None
    base = Path(os.path.abspath(paths[0])).parent  # as the client: links not resolved
    ctx = _named(config.get("contexts"), context or config.get("current-context"))
    body = ctx.get("context") if ctx else None
    if not isinstance(body, Mapping):
        return None
    cluster_entry = _named(config.get("clusters"), body.get("cluster"))
    user_entry = _named(config.get("users"), body.get("user"))
    cluster = cluster_entry.get("cluster") if cluster_entry else None
    user = user_entry.get("user") if user_entry else None
    if not isinstance(cluster, Mapping) or not isinstance(user, Mapping):
        return None
    if any(k in cluster for k in ("proxy-url", "tls-server-name")) or "auth-provider" in user:
        return None
    server = urlsplit(str(cluster.get("server") or "").rstrip("/"))
    if server.scheme not in ("http", "https") or not server.hostname or _proxied(server.scheme):
        return None
    try:
        return _endpoint(server, cluster, user, base)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise KubeError(f"no usable Kubernetes configuration: {exc}") from exc


def _endpoint(
    server: Any, cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path
) -> Endpoint:
    """The client's order: a token (``token``, else ``tokenFile``; surrounding white space
    dropped, as client-go does, where the Python client would send a file's last newline), an
    exec plugin, a user name and password; then the cluster's TLS with the user's (or the
    plugin's) client certificate."""
    authorization = ""
    cert = key = None
    token = user.get("token") or (
        (base / str(user["tokenFile"])).read_text() if user.get("tokenFile") else None
    )
    if token and str(token).strip():
        authorization = f"Bearer {str(token).strip()}"
    elif isinstance(user.get("exec"), Mapping):
        status = _exec_status(user["exec"], cluster, base)
        if isinstance(status, Mapping) and status.get("token"):
            authorization = f"Bearer {status['token']}"
        elif isinstance(status, Mapping) and status.get("clientCertificateData"):
            if not status.get("clientKeyData"):
                raise ValueError("exec: missing clientKeyData field in plugin output")
            cert = str(status["clientCertificateData"]).encode()
            key = str(status["clientKeyData"]).encode()
        else:
            raise ValueError("exec: missing token or clientCertificateData field in plugin output")
    elif "username" in user and "password" in user:
        basic = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
        authorization = f"Basic {basic}"
    tls = None
    if server.scheme == "https":
        if cert is None:
            cert = _bytes(user, "client-certificate", base)
            key = _bytes(user, "client-key", base)
        tls = _tls(cluster, cert, key, base)
    return Endpoint(
        scheme=server.scheme,
        host=server.hostname,
        port=server.port or (443 if server.scheme == "https" else 80),
        prefix=server.path.rstrip("/"),
        tls=tls,
        authorization=authorization,
    )


def lister(paths: list[Path], context: str | None) -> DirectLister | None:
    """A :class:`DirectLister` for the kubeconfig ``paths`` and ``context``, or None when the
    Kubernetes client must connect instead."""
    found = endpoint(paths, context)
    return DirectLister(found) if found is not None else None


@dataclass
class _Answer:
    """An HTTP error answer, shaped as the client's ``ApiException`` that
    :func:`~controlplane.kube.answers.to_kube_error` and
    :func:`~controlplane.kube.answers.retry_after` read."""

    status: int
    reason: str
    body: bytes
    headers: Mapping[str, str]


class DirectLister:
    """Lists the kinds of :data:`PLURALS` from :class:`Endpoint`, paged and retried as
    :meth:`controlplane.kube.real.RealKube.list` does."""

    def __init__(
        self,
        where: Endpoint,
        *,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.where = where
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._page_size = page_size
        self._sleep = sleep

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> builtins.list[Obj]:
        check_ref_names(namespace, None)
        plural = PLURALS[(api_version, kind)]
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        path += (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
        items: builtins.list[Obj] = []
        token: str | None = None
        while True:
            query = {"limit": str(self._page_size)}
            selector = selector_string(label_selector)
            if selector:
                query["labelSelector"] = selector
            if token:
                query["continue"] = token
            try:
                answer = self._get(f"{path}?{urlencode(query)}")
            except NotFound as exc:
                if any(text in str(exc) for text in NO_ROUTE):
                    raise unserved(api_version, kind) from exc
                raise
            items.extend(
                {"apiVersion": api_version, "kind": kind, **item}
                for item in answer.get("items") or []
            )
            token = (answer.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def _get(self, path: str) -> dict[str, Any]:
        for attempt in range(MAX_RETRIES + 1):
            answer = self._request(path)
            if 200 <= answer.status < 300:
                try:
                    data = json.loads(answer.body)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise KubeError("the API server answered with a non-object")
                return data
            wait = retry_after(answer)
            if wait is None or attempt == MAX_RETRIES:
                raise to_kube_error(answer)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> http.client.HTTPConnection:
        where = self.where
        if where.tls is not None:
            return http.client.HTTPSConnection(
                where.host, where.port, timeout=self._connect_timeout_s, context=where.tls
            )
        return http.client.HTTPConnection(where.host, where.port, timeout=self._connect_timeout_s)

    def _connected(self) -> http.client.HTTPConnection:
        """A connection to the server: one never made (refused, or its SYN unanswered within
        the connect timeout) is tried again on a new one, up to :data:`CONNECT_ATTEMPTS` in all,
        as :class:`controlplane.kube.real.RealKube` does; a TLS handshake that failed on a
        connection made is not."""
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            conn = self._connection()
            try:
                conn.connect()
                return conn
            except OSError:
                made = conn.sock is not None
                conn.close()
                if made or attempt == CONNECT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(self, path: str) -> _Answer:
        where = self.where
        conn: http.client.HTTPConnection | None = None
        headers = {"Accept": "application/json", "User-Agent": f"kubectl-canary/{__version__}"}
        if where.authorization:
            headers["Authorization"] = where.authorization
        try:
            conn = self._connected()
            if conn.sock is not None:
                conn.sock.settimeout(self._request_timeout_s)
            conn.request("GET", where.prefix + path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            return _Answer(response.status, response.reason, body, dict(response.getheaders()))
        except (OSError, http.client.HTTPException) as exc:
            name = type(exc).__name__
            raise KubeError(f"the API server is unreachable: {name}: {exc}") from exc
        except ValueError as exc:  # http.client refuses a header with a line break in it
            raise KubeError(f"no usable Kubernetes configuration: {exc}") from exc
        finally:
            if conn is not None:
                conn.close()
