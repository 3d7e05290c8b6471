"""A throwaway Kubernetes control plane on loopback: etcd and kube-apiserver built from source.

Owns the lifecycle of the API servers ``make kube-up`` and the test fixtures start (the Python
analogue of controller-runtime's envtest). :func:`start_cluster` starts ``etcd`` and
``kube-apiserver`` on free loopback ports with what a cluster has: TLS (a throwaway CA and a
serving certificate for 127.0.0.1), token authentication (an admin token in ``system:masters``),
``Node,RBAC`` authorization and service-account token signing (so TokenRequest works), then writes
an admin kubeconfig and installs the CustomResourceDefinitions it is given
(:mod:`harness.cluster.upstream_crds` reads the upstream ones from their Go modules).
:meth:`LoopbackCluster.stop` terminates both processes and waits: no orphans, no port held.
Every program of the cluster is started by name with its command line recorded (etcd,
``kube-apiserver`` and what :meth:`LoopbackCluster.spawn` adds), so a test can crash one and
start it again as it was (:meth:`LoopbackCluster.restart`: SIGKILL, then the same argv and
environment on the same ports, its log appended; etcd keeps the API server's data).
:func:`applier` server-side applies setup objects as the admin through the product's adapter
(the add-ons' ConfigMaps, Gateways, webhooks).

The binaries are built once per machine by ``scripts/build-kube.sh`` (``make kube-tools``) into
``$XDG_CACHE_HOME/controlplane-tools/kube-<version>/bin``; a missing binary is a
:class:`KubeSetupError` that says how to build it, never a skip.

``make kube-up`` / ``make kube-down`` run it through :mod:`harness.cli`, which sits above
this module and the ones that add workloads and KServe to a cluster (so none of them imports
another's caller).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.errors import ControlPlaneError, KubeError
from controlplane.local.ports import free_port
from harness.tools import tools_dir

KUBE_VERSION = "v1.34.10"
"""kube-apiserver's version; KServe v0.20.0 (the pinned KServe) builds against k8s.io 0.34."""
ETCD_VERSION = "v3.6.5"
"""The etcd Kubernetes v1.34.10 tests against (hack/lib/etcd.sh)."""
ADMIN_USER = "admin"
_DETACHED: list[subprocess.Popen[bytes]] = []
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # upstream CRDs are megabytes
SERVICE_CIDR = "10.0.0.0/24"


class KubeSetupError(ControlPlaneError):
    """The loopback control plane could not be built, started or given its CRDs."""


def tool_dir() -> Path:
    """Where ``scripts/build-kube.sh`` puts the binaries (outside the repository)."""
    return tools_dir() / f"kube-{KUBE_VERSION}" / "bin"


def binary(name: str) -> Path:
    """Path of one of ``scripts/build-kube.sh``'s programs, or a clear error telling how to
    build it."""
    path = tool_dir() / name
    if not os.access(path, os.X_OK):
        version = {"etcd": ETCD_VERSION}.get(name, KUBE_VERSION if name.startswith("kube") else "")
        raise KubeSetupError(
            f"{name}{' ' + version if version else ''} is not built: "
            "run `make kube-tools` (it needs Go >= 1.25 on PATH: https://go.dev/doc/install)"
        )
    return path


def harness_env() -> dict[str, str]:
    """The environment a ``python -m harness...`` child needs: the harness is no installed
    package (the wheel ships ``controlplane`` only), so the folder holding it goes first on
    ``PYTHONPATH``, whatever the child's working directory."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {"PYTHONPATH": os.pathsep.join(paths)}


# --- credentials ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """PEM files under ``folder``: a CA, the API server's serving pair, the service-account key."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def client_cert(self) -> Path:
        """A client certificate the API server trusts (its ``--client-ca-file`` signed it) for
        the user :data:`CERT_USER`, in no group: what it may do, RBAC bindings say."""
        return self.folder / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"


CERT_USER = "cert-user"
"""The user name (the certificate's common name) of :attr:`Credentials.client_cert`."""


def make_credentials(folder: Path) -> Credentials:
    """A throwaway CA, a serving certificate for 127.0.0.1/localhost, a client certificate for
    :data:`CERT_USER` and a service-account key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    creds = Credentials(folder)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("controlplane-loopback-ca"))
        .issuer_name(name("controlplane-loopback-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = (
        x509.CertificateBuilder()
        .subject_name(name("kube-apiserver"))
        .issuer_name(ca_cert.subject)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(name(CERT_USER))
        .issuer_name(ca_cert.subject)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    creds.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    creds.client_key.write_bytes(pem_key(client_key))
    creds.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    creds.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    creds.serving_key.write_bytes(pem_key(serving_key))
    creds.service_account_key.write_bytes(pem_key(rsa.generate_private_key(65537, 2048)))
    for private in (creds.serving_key, creds.service_account_key, creds.client_key):
        private.chmod(0o600)
    return creds


def kubeconfig(server: str, ca: Path, token: str, user: str = ADMIN_USER) -> dict[str, Any]:
    """A kubeconfig for ``server`` with a bearer token (the CA embedded, so it can be copied)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "loopback",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "loopback", "user": user}}],
        "current-context": user,
    }


# --- the cluster ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """How one program of the cluster was started: what :meth:`LoopbackCluster.restart` runs
    again."""

    argv: tuple[str, ...]
    env: dict[str, str] | None
    detach: bool


@dataclass
class LoopbackCluster:
    """A running etcd + kube-apiserver under ``workdir``; :attr:`kubeconfig` is an admin's.

    ``programs`` and ``running``: each program started by name (its command line, and the
    process running it now)."""

    workdir: Path
    port: int
    token: str
    pids: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    programs: dict[str, Program] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def log_tail(self, chars: int = 3000, names: Sequence[str] = ("kube-apiserver", "etcd")) -> str:
        parts = []
        for name in names:
            with contextlib.suppress(OSError):
                parts.append(
                    f"--- {name}.log\n" + (self.workdir / f"{name}.log").read_text()[-chars:]
                )
        return "\n".join(parts)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        detach: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start one more program of this cluster (logging to ``<workdir>/<name>.log``); it is
        stopped by :meth:`stop`, before the ones started earlier."""
        proc = self._launch(name, Program(tuple(argv), env, detach))
        if detach:
            self.pids.append(proc.pid)
            _DETACHED.append(proc)
        else:
            self.processes.append(proc)
        return proc

    def _launch(
        self, name: str, program: Program, *, again: bool = False
    ) -> subprocess.Popen[bytes]:
        """Run ``program`` as ``name``, its output to ``<name>.log`` (appended ``again``), and
        remember both."""
        popen: dict[str, Any] = {"stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
        if program.detach:
            popen["start_new_session"] = True
        with (self.workdir / f"{name}.log").open("ab" if again else "wb") as log:
            if again:
                log.write(f"\n--- {name} started again after SIGKILL (harness)\n".encode())
                log.flush()
            proc = subprocess.Popen(
                list(program.argv), stdout=log, env={**os.environ, **(program.env or {})}, **popen
            )
        self.programs[name] = program
        self.running[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL the program ``name`` (a crash: nothing is cleaned up) and wait until it is
        gone; its ports are free once this returns."""
        proc = self._running(name)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    def revive(
        self, name: str, *, ready: Callable[[], bool] | None = None, timeout: float = 90.0
    ) -> subprocess.Popen[bytes]:
        """Start the program ``name`` again, exactly as it was started (argv, environment, so
        the same ports and data folders), once it has exited; it takes the old one's place in
        the stop order. Returns once ``ready()`` holds (for ``kube-apiserver``: ``/readyz``; for
        ``etcd``: ``/health``; for others, None: at once)."""
        old = self._running(name)
        if old.poll() is None:
            raise KubeSetupError(f"{name} is still running: kill it first")
        proc = self._launch(name, self.programs[name], again=True)
        if old in self.processes:
            self.processes[self.processes.index(old)] = proc
        else:
            if old.pid in self.pids:
                self.pids[self.pids.index(old.pid)] = proc.pid
            _reap(old.pid)
            _DETACHED.append(proc)
        check = ready or self._ready_check(name)
        if check is not None and not _wait(check, [proc], timeout):
            raise KubeSetupError(
                f"{name} did not come back after a restart:\n{self.log_tail(names=(name,))}"
            )
        return proc

    def restart(
        self,
        name: str,
        *,
        down_s: float = 0.0,
        ready: Callable[[], bool] | None = None,
        timeout: float = 90.0,
    ) -> subprocess.Popen[bytes]:
        """Crash the program ``name`` (:meth:`kill`), leave it down ``down_s`` seconds, and
        start it again as it was (:meth:`revive`, which waits for ``ready``)."""
        self.kill(name)
        if down_s > 0:
            time.sleep(down_s)
        return self.revive(name, ready=ready, timeout=timeout)

    def _running(self, name: str) -> subprocess.Popen[bytes]:
        try:
            return self.running[name]
        except KeyError:
            known = ", ".join(sorted(self.running)) or "none"
            raise KubeSetupError(f"no program {name!r} in this cluster (known: {known})") from None

    def _ready_check(self, name: str) -> Callable[[], bool] | None:
        if name == "kube-apiserver":
            return lambda: _healthy(self.server + "/readyz", self.ca, self.token)
        if name == "etcd":
            url = _flag(self.programs[name].argv, "--advertise-client-urls")
            return None if url is None else (lambda: _healthy(url + "/health", None))
        return None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        """One authenticated call as the admin (for setup; the product uses RealKube)."""
        data = None if body is None else json.dumps(body).encode()
        raw = self._read(method, path, data, content_type, "application/json", timeout)
        return json.loads(raw) if raw else None

    def text(self, path: str, *, timeout: float = 30.0) -> str:
        """A GET of a plain-text path as the admin (``/metrics``: the server's own metrics)."""
        return self._read("GET", path, None, "", "text/plain", timeout).decode()

    def _read(
        self,
        method: str,
        path: str,
        data: bytes | None,
        content_type: str,
        accept: str,
        timeout: float,
    ) -> bytes:
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", content_type)
        context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(req, context=context, timeout=timeout) as response:
            return bytes(response.read())

    def stop(self) -> None:
        """Terminate kube-apiserver, then etcd, and wait (kill after 10 s). Safe to call twice."""
        for proc in reversed(self.processes):
            _terminate(proc.pid, lambda p=proc: p.poll() is not None)
            proc.wait()
        for pid in reversed(self.pids):
            _terminate(pid, lambda p=pid: not _alive(p))
            _reap(pid)

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def applier(cluster: LoopbackCluster) -> Callable[[dict[str, Any]], None]:
    """Server-side apply as the admin, through the product's adapter (discovery finds each kind's
    resource); a refusal is a :class:`KubeSetupError` naming the object."""
    from controlplane.kube.real import RealKube

    kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))

    def apply(obj: dict[str, Any]) -> None:
        try:
            kube.apply(obj, field_manager="controlplane-kube-up")
        except KubeError as exc:
            raise KubeSetupError(
                f"the API server refused {obj['kind']} {obj['metadata']['name']}: {exc}"
            ) from exc

    return apply


def _flag(argv: Sequence[str], name: str) -> str | None:
    """The value of ``name=value`` in ``argv`` (the last one), or None (pure)."""
    found = None
    for arg in argv:
        if arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of a detached child counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _terminate(pid: int, gone: Any) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if gone():
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while not gone():
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` when it is our own child (a detached one, say).

    A child this process started detached is collected through its ``Popen`` (``poll``), so
    that the object knows it is gone and is dropped: reaped behind its back, it would report
    itself "still running" (a ``ResourceWarning``) when collected at exit. It waits (10 s at
    most) rather than polls: :func:`_alive` calls a process gone once its main thread is a
    zombie, and a threaded program's other threads may still be exiting then, when ``waitpid``
    would not report it yet (seen under load: a stopped ``http.server`` left unreaped)."""
    for proc in _DETACHED:
        if proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.returncode is not None:
                _DETACHED.remove(proc)
            return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _healthy(url: str, ca: Path | None, token: str | None = None) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(req, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _wait(check: Any, procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        if check():
            return True
        time.sleep(0.1)
    return False


def start_cluster(
    workdir: Path,
    *,
    crds: Iterable[dict[str, Any]] = (),
    detach: bool = False,
    timeout: float = 90.0,
    service_accounts: bool = False,
    audit_writes: bool = False,
) -> LoopbackCluster:
    """Start etcd and kube-apiserver under ``workdir`` and install ``crds`` (CRD objects).

    ``detach`` starts them in their own session, for a cluster that outlives this process
    (``make kube-up``); the returned cluster then tracks them by pid only.
    ``service_accounts`` keeps the ``ServiceAccount`` admission plugin on, so pods get their
    ServiceAccount's token mounted as in any cluster (the real node's pods that call the API:
    the chart's controller); off, the default, a pod is admitted before its namespace's
    ``default`` ServiceAccount exists, which kwok's fleets of pods in fresh namespaces need.
    ``audit_writes`` logs every write request (:data:`AUDIT_POLICY`) to ``<workdir>/audit.log``,
    one JSON event a line (:func:`audit_events`), for counting who wrote what.
    """
    apiserver, etcd = binary("kube-apiserver"), binary("etcd")
    workdir.mkdir(parents=True, exist_ok=True)
    creds = make_credentials(workdir / "pki")
    token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER}-uid,"system:masters"\n')
    tokens.chmod(0o600)

    client_port, peer_port, port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    cluster = LoopbackCluster(workdir, port, token)
    try:
        etcd_argv = (
            str(etcd),
            "--name=default",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",  # a throwaway store: durability costs seconds
            "--log-level=warn",
        )
        cluster.processes.append(cluster._launch("etcd", Program(etcd_argv, None, detach)))
        if not _wait(lambda: _healthy(etcd_url + "/health", None), cluster.processes, timeout):
            raise KubeSetupError(f"etcd did not become healthy:\n{cluster.log_tail()}")
        apiserver_argv = (
            str(apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'pki'}",
            f"--tls-cert-file={creds.serving_cert}",
            f"--tls-private-key-file={creds.serving_key}",
            f"--client-ca-file={creds.ca}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={creds.service_account_key}",
            f"--service-account-signing-key-file={creds.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *(() if service_accounts else ("--disable-admission-plugins=ServiceAccount",)),
            "--watch-cache=true",
            *(_audit_flags(workdir) if audit_writes else ()),
            "--v=0",
        )
        cluster.processes.append(
            cluster._launch("kube-apiserver", Program(apiserver_argv, None, detach))
        )
        ready = cluster.server + "/readyz"
        if not _wait(lambda: _healthy(ready, creds.ca, token), cluster.processes, timeout):
            raise KubeSetupError(f"kube-apiserver did not become ready:\n{cluster.log_tail()}")
        cluster.kubeconfig.write_text(yaml.safe_dump(kubeconfig(cluster.server, creds.ca, token)))
        cluster.kubeconfig.chmod(0o600)
        install_crds(cluster, crds, timeout=timeout)
    except BaseException:
        cluster.stop()
        raise
    if detach:
        cluster.pids = [p.pid for p in cluster.processes]
        _DETACHED.extend(cluster.processes)  # outlive this process; stopped by pid (down)
        cluster.processes = []
    return cluster


AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Metadata",
            "verbs": ["create", "update", "patch", "delete", "deletecollection"],
        },
        {"level": "None"},
    ],
}
"""Every write at the ``Metadata`` level (who, what, when, the answer's code), once it answered
(``ResponseComplete``); nothing else (kube-apiserver's ``--audit-policy-file``)."""
AUDIT_LOG = "audit.log"


def _audit_flags(workdir: Path) -> tuple[str, ...]:
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    return (f"--audit-policy-file={policy}", f"--audit-log-path={workdir / AUDIT_LOG}")


def audit_events(cluster: LoopbackCluster) -> list[dict[str, Any]]:
    """The write events of a cluster started with ``audit_writes`` (every complete line)."""
    path = cluster.workdir / AUDIT_LOG
    events = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events


def crd_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the YAML files (other documents are skipped)."""
    found = []
    for path in paths:
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(doc)
    return found


def install_crds(
    cluster: LoopbackCluster, crds: Iterable[dict[str, Any]], *, timeout: float = 90.0
) -> None:
    """Server-side apply each CRD, four at a time, and wait until every one is served
    (:func:`wait_served`). Its discovery document names a resource only once the CRD is
    Established (``sync`` in ``pkg/apiserver/customresource_discovery_controller.go``,
    apiextensions-apiserver v0.34.10), so no other wait is needed: a GET of the CRD every 50 ms
    until Established cost the API server about 5 s of CPU a cluster (KServe's CRDs are up to
    0.8 MB, each GET decoded, converted and encoded whole)."""
    crds = list(crds)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda crd: _apply_crd(cluster, crd), crds))  # raises what one raised
    wait_served(cluster, crds, timeout=timeout)


def wait_served(
    cluster: LoopbackCluster, crds: Iterable[dict[str, Any]], *, timeout: float = 90.0
) -> None:
    """Wait until one list of each CRD's resource succeeds and its group version's discovery
    document names it. Established is not serving: until its watch cache is filled a new
    resource answers ``429 storage is (re)initializing`` (and 404 or 503 before discovery has
    it, for a CRD applied without waiting). And a list that succeeds is not discovery: a client
    that finds the resource by discovery (the Kubernetes Python client's dynamic client) got
    ``404`` for ``/apis/<group>/<version>`` once, right after the list had answered; the
    discovery handler is installed apart from the resource's."""
    deadline = time.monotonic() + timeout
    for crd in crds:
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        plural = spec["names"]["plural"]
        collection = f"/apis/{spec['group']}/{version}/{plural}?limit=1"
        discovery = f"/apis/{spec['group']}/{version}"
        while True:
            try:
                cluster.request("GET", collection)
                found = cluster.request("GET", discovery).get("resources") or []
                if any(r.get("name") == plural for r in found):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 429, 503):
                    raise KubeSetupError(f"{collection} is not served: {exc}") from exc
            if time.monotonic() > deadline:
                raise KubeSetupError(f"{collection} is not served by discovery ({discovery})")
            time.sleep(0.05)


CRD_APPLY_TIMEOUT_S = 180.0
"""How long one CRD's server-side apply may take (setup, not the product's calls)."""
CRD_APPLY_TRIES = 3
"""Server-side apply of a CRD is idempotent: on a machine busy enough that the API server gives
up on one of KServe's large CRDs (its own 60 s: 504, "request did not complete within requested
timeout") or the client's wait runs out, it is sent again."""


def _apply_crd(cluster: LoopbackCluster, crd: dict[str, Any]) -> None:
    name = crd["metadata"]["name"]
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    try:
        for attempt in range(CRD_APPLY_TRIES):
            try:
                cluster.request(
                    "PATCH",
                    f"{path}?fieldManager=controlplane-kube-up&force=true",
                    crd,
                    content_type="application/apply-patch+yaml",
                    # KServe's LLMInferenceService CRDs are 0.8 MB each: applied four at a time
                    # on two busy cores, one took over 30 s (19.6 s alone at load 9)
                    timeout=CRD_APPLY_TIMEOUT_S,
                )
                break
            except (TimeoutError, urllib.error.HTTPError) as exc:
                busy = isinstance(exc, TimeoutError) or exc.code == 504
                if not busy or attempt == CRD_APPLY_TRIES - 1:
                    raise
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["message"]
        raise KubeSetupError(f"the API server refused CRD {name}: {detail}") from exc
