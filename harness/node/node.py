"""A real Kubernetes node on this machine: kubelet, containerd, runc and CNI, running real pods.

Owns :func:`start_node` and :class:`RealNode`. Against a loopback control plane
(:mod:`harness.cluster.kubeapi`, with :mod:`harness.cluster.workloads`' scheduler and
controllers), it starts

- ``containerd`` (Debian's 1.6) with its CRI plugin, every folder under :data:`RUN_DIR`, its
  sandbox image the locally built pause image, runc as the runtime (``restrict_oom_score_adj``:
  this machine lets no process lower its OOM score, which runc otherwise does for every sandbox
  and fails: "failed to update /proc/self/oom_score_adj: Permission denied");
- a CNI network (Debian's ``containernetworking-plugins``: ``bridge`` with ``host-local`` IPAM,
  and ``loopback``) on the bridge :data:`BRIDGE`, :data:`POD_SUBNET`, without IP masquerade or
  port mapping: pods reach the machine and each other, nothing beyond, and no iptables rule is
  written (but kube-proxy's, below);
- ``kubelet`` v1.34.10 (``scripts/build-kube.sh``), cgroupfs driver under its own cgroup root
  :data:`CGROUP`, registering the node :data:`NODE_NAME` with the bridge address as its
  InternalIP. It authenticates with the cluster's admin kubeconfig (no node certificate: the
  Node authorizer is not exercised here);
- with ``cluster_network``, Service routing and cluster DNS: ``kube-proxy`` (iptables mode) and
  CoreDNS on the bridge's address, kubelet's ``clusterDNS`` (:mod:`harness.node.services`).

Images are built by :mod:`harness.node.images` and imported with ``ctr``; pods use
``imagePullPolicy: Never`` or ``IfNotPresent``. One node per machine (fixed bridge, subnet and
kubelet port): :func:`start_node` waits for the node another process runs (a lock file), and
refuses to start beside one it cannot see stop (``make kube-up``'s). :meth:`RealNode.stop` kills
every process of the node and takes back everything it changed on the machine
(:mod:`harness.node.host`), and reports what is left, if anything. A node records what the machine
was before it (:data:`RECORD`), so that one whose process died without stopping it (a killed
test run) is taken back by :func:`take_back_stale` (``make kube-down``). Called by ``make kube-up
NODE=1`` (:mod:`harness.cli`) and the test fixtures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.local.ports import free_port
from harness.cluster.kubeapi import SERVICE_CIDR, KubeSetupError, LoopbackCluster, binary
from harness.node import host, services
from harness.node.images import Image, engine_image, need, pause_image

NODE_NAME = "node-1"
BRIDGE = "cpnode0"
POD_SUBNET = "10.245.0.0/24"
NODE_IP = "10.245.0.1"
"""The bridge's address: the node's InternalIP, the pods' gateway, where kubelet listens."""
CGROUP = "controlplane-node"
RUN_DIR = Path("/run/controlplane-node")
"""containerd's and kubelet's state, sockets and mounts: short, since a Unix socket path has at
most 107 bytes (kubelet's ``pod-resources`` socket under a pytest folder had more), and fixed,
one node per machine."""
LOCK_FILE = Path("/run/lock/controlplane-node.lock")
KUBELET_PORT = 10250
RECORD = "footprint.json"
"""In :data:`RUN_DIR`: the node's log folder and the machine's footprint before it started."""
CNI_BIN = Path("/usr/lib/cni")
NETWORK = "controlplane"
_DETACHED: list[subprocess.Popen[bytes]] = []


class NodeHeld(KubeSetupError):
    """The node on this machine is a live process's (or ``make kube-up``'s): not to be taken
    back as stale."""


def containerd_config(run: Path) -> str:
    """containerd's config (version 2) with every folder under ``run`` (pure)."""
    c = run / "containerd"
    return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
[grpc]
  address = "{c / "containerd.sock"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10.1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{run / "cni" / "net.d"}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{c / "runc"}"
"""


def cni_config(run: Path, service_cidr: str | None = None) -> dict[str, Any]:
    """The pods' network: a bridge with host-local addresses, no masquerade (pure). A pod has
    a route to the bridge's subnet only, and with ``service_cidr`` (where kube-proxy runs) one to
    the Services' addresses through the bridge's address, where kube-proxy's rules take them."""
    routes = [{"dst": service_cidr, "gw": NODE_IP}] if service_cidr else []
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                    **({"routes": routes} if routes else {}),
                    "dataDir": str(run / "cni" / "ipam"),
                },
            }
        ],
    }


def kubelet_config(run: Path, dns: bool = False) -> dict[str, Any]:
    """kubelet's KubeletConfiguration (pure); with ``dns``, pods are pointed at the node's
    CoreDNS (:func:`harness.node.services.kubelet_dns`)."""
    return {
        **(services.kubelet_dns(NODE_IP) if dns else {}),
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{run / 'containerd' / 'containerd.sock'}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP}",
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 0,
        "readOnlyPort": 0,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podCIDR": POD_SUBNET,
        "podLogsDir": str(run / "pod-logs"),
        "resolvConf": "",
        "evictionHard": {},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": False,
        "maxPods": 30,
        "syncFrequency": "10s",
        "nodeStatusReportFrequency": "10s",
    }


@dataclass
class RealNode:
    """A running node; :meth:`stop` takes it all back."""

    folder: Path
    """The node's logs (``log/containerd.log``, ``log/kubelet.log``) and image builds."""
    before: host.Footprint
    images: dict[str, str] = field(default_factory=dict)
    """What each built image is called in containerd: ``pause``, ``engine``."""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """containerd and kubelet (and kube-proxy and CoreDNS), when started by this process and not
    detached."""
    name: str = NODE_NAME
    run: Path = RUN_DIR
    lock: int | None = None
    """The descriptor holding :data:`LOCK_FILE` while this process runs the node."""

    @property
    def socket(self) -> Path:
        return self.run / "containerd" / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 300) -> str:
        """``ctr -n k8s.io ARGS`` against this node's containerd."""
        argv = [need("ctr", "containerd"), "--address", str(self.socket), "-n", "k8s.io", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise KubeSetupError(f"ctr {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def import_image(self, image: Image) -> str:
        repository = image.ref.rsplit(":", 1)[0]
        self.ctr("images", "import", "--base-name", repository, str(image.archive))
        return image.ref

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for name in ("containerd", "kubelet", "kube-proxy", "coredns"):
            with contextlib.suppress(OSError):
                text = (self.folder / "log" / f"{name}.log").read_text()[-chars:]
                parts.append(f"--- {name}.log\n{text}")
        return "\n".join(parts)

    def stop(self) -> dict[str, list[str]]:
        """Kill the node's processes and containers, undo its mounts, network namespaces,
        links, cgroups and files, remove :data:`RUN_DIR` (the logs stay in its folder); returns
        what is left (empty: nothing)."""
        for proc in reversed(self.processes):  # CoreDNS, kube-proxy, kubelet, then containerd
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        left = host.take_back(self.before, self.run, CGROUP, BRIDGE)
        if self.lock is not None:
            os.close(self.lock)  # releases the flock
            self.lock = None
        return left


def _cluster_network(
    cluster: LoopbackCluster, node: RealNode, detach: bool, timeout: float
) -> None:
    """kube-proxy and CoreDNS as processes of the node; returns once both serve."""
    run = node.run
    health, metrics, ready = free_port(), free_port(), free_port()
    (run / "kube-proxy").mkdir(parents=True, exist_ok=True)
    proxy_config = run / "kube-proxy" / "config.yaml"
    proxy_config.write_text(
        yaml.safe_dump(
            services.kube_proxy_config(
                cluster.kubeconfig, NODE_NAME, POD_SUBNET, NODE_IP, health, metrics
            )
        )
    )
    _spawn(node, "kube-proxy", [str(binary("kube-proxy")), f"--config={proxy_config}"], detach)
    (run / "coredns").mkdir(parents=True, exist_ok=True)
    core = run / "coredns" / "Corefile"
    core.write_text(services.corefile(cluster.kubeconfig, NODE_IP, ready))
    _spawn(node, "coredns", [str(binary("coredns")), "-conf", str(core)], detach)
    _until(
        lambda: services.answers(f"http://127.0.0.1:{health}/healthz"),
        "kube-proxy did not sync its rules",
        node,
        timeout,
    )
    _until(
        lambda: services.answers(f"http://127.0.0.1:{ready}/ready"),
        "CoreDNS was not ready",
        node,
        timeout,
    )


def _port_free(port: int) -> bool:
    """Whether a listener can bind ``port`` as kubelet does: with ``SO_REUSEADDR``, which Go sets
    on every listening socket (Go 1.26.8, which builds kubelet here: ``src/net/sockopt_linux.go``,
    ``setDefaultListenerSockopts``), so a connection of the node before left in ``TIME_WAIT`` on
    the port does not hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _cgroup_root() -> None:
    """kubelet wants its cgroup root to exist in every hierarchy (v1: one per controller)."""
    for hierarchy in host.CGROUP_ROOT.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink():
            with contextlib.suppress(OSError):
                (hierarchy / CGROUP).mkdir(exist_ok=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, check=True, timeout=30)


def _spawn(node: RealNode, name: str, argv: Sequence[str], detach: bool) -> subprocess.Popen[bytes]:
    logs = node.folder / "log"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
    if not detach:
        node.processes.append(proc)
    else:
        _DETACHED.append(proc)  # outlives this process (make kube-up); taken back by RUN_DIR
    return proc


def _until(check: Any, what: str, node: RealNode, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise KubeSetupError(f"{what} within {timeout:.0f} s:\n{node.log_tail()}")
        time.sleep(0.2)


def _node_ready(cluster: LoopbackCluster) -> bool:
    try:
        node = cluster.request("GET", f"/api/v1/nodes/{NODE_NAME}")
    except OSError:
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _lock(timeout: float) -> int:
    """Hold :data:`LOCK_FILE` (``flock``), waiting up to ``timeout`` for the node another process
    runs to stop: one node per machine, whichever pytest worker asks. The file descriptor is
    closed on exec, so a detached ``make kube-up`` node does not keep it: the process that
    started it lets it go once it has recorded the node (:func:`harness.cli.up`)."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise KubeSetupError(
                    f"another real node kept {LOCK_FILE} for {timeout:.0f} s"
                ) from None
            time.sleep(0.5)


def start_node(
    cluster: LoopbackCluster,
    folder: Path,
    *,
    engine: bool = True,
    detach: bool = False,
    cluster_network: bool = False,
    timeout: float = 120.0,
    wait: float = 900.0,
) -> RealNode:
    """Start containerd and kubelet as the node :data:`NODE_NAME` of ``cluster`` (their state in
    :data:`RUN_DIR`, their logs and the image builds in ``folder``),
    with the pause image (and, with ``engine``, the engine image) imported; returns once the
    node is Ready (with ``cluster_network``, once kube-proxy has synced its rules and CoreDNS
    answers too: :mod:`harness.node.services`). Needs root, and the Debian packages
    ``scripts/ensure-node.sh`` installs."""
    if os.geteuid() != 0:
        raise KubeSetupError("a real node needs root (kubelet, containerd, network namespaces)")
    for tool, package in (
        ("containerd", "containerd"),
        ("runc", "runc"),
        ("umoci", "umoci"),
        ("mmdebstrap", "mmdebstrap"),
        ("ip", "iproute2"),
    ):
        need(tool, package)
    if not (CNI_BIN / "bridge").exists():
        raise KubeSetupError(
            "the CNI plugins are not installed: run `make kube-tools` (Debian package "
            "containernetworking-plugins)"
        )
    kubelet = binary("kubelet")
    if cluster_network:
        binary("kube-proxy")
        binary("coredns")
    folder, run = folder.resolve(), RUN_DIR
    lock = _lock(wait)
    probe = subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False)
    taken = [
        what
        for what, held in (
            (f"the bridge {BRIDGE}", probe.returncode == 0),
            (str(run), run.exists()),
            (f"port {KUBELET_PORT}", not _port_free(KUBELET_PORT)),
        )
        if held
    ]
    if taken:
        os.close(lock)
        raise KubeSetupError(
            f"a real node already runs on this machine ({', '.join(taken)} taken) and no "
            "process of this machine holds it: `make kube-down` stops the one `make kube-up` "
            "started and takes back one a stopped process left"
        )
    before = host.read_footprint(run, CGROUP)
    node = RealNode(folder, before, lock=lock)
    try:
        for sub in ("containerd", "cni/net.d", "kubelet", "pod-logs"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        (run / RECORD).write_text(json.dumps({"folder": str(folder), "before": before.to_json()}))
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (run / "containerd" / "config.toml").write_text(containerd_config(run))
        (run / "cni" / "net.d" / f"10-{NETWORK}.conflist").write_text(
            json.dumps(cni_config(run, SERVICE_CIDR if cluster_network else None), indent=1)
        )
        config = run / "kubelet" / "config.yaml"
        config.write_text(yaml.safe_dump(kubelet_config(run, dns=cluster_network)))
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{NODE_IP}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        _cgroup_root()
        _spawn(
            node,
            "containerd",
            [need("containerd", "containerd"), "--config", str(run / "containerd/config.toml")],
            detach,
        )
        _until(node.socket.exists, "containerd did not open its socket", node, timeout)
        node.images["pause"] = node.import_image(pause_image(folder / "images"))
        if engine:
            node.images["engine"] = node.import_image(engine_image(folder / "images"))
        shutil.rmtree(folder / "images", ignore_errors=True)
        _spawn(
            node,
            "kubelet",
            [
                str(kubelet),
                f"--config={config}",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--root-dir={run / 'kubelet' / 'root'}",
                f"--cert-dir={run / 'kubelet' / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=0",
            ],
            detach,
        )
        _until(
            lambda: _node_ready(cluster), f"node {NODE_NAME} did not become Ready", node, timeout
        )
        if cluster_network:
            _cluster_network(cluster, node, detach, timeout)
    except BaseException:
        node.stop()
        raise
    return node


def take_back_stale(run: Path = RUN_DIR) -> dict[str, Any] | None:
    """Take back the node in ``run`` whose process stopped without stopping it (a killed test
    run; a ``make kube-up`` node whose folder is gone), from the footprint it recorded
    (:data:`RECORD`); returns ``{"folder": its logs ("" when unrecorded), "left": what is
    left}``, or None when
    ``run`` is not there. A folder with no record (a node of a version that kept none, or
    one killed before it wrote it) is taken back as far as it is surely the node's
    (:func:`_unrecorded`). Refused while a live process holds the node (its lock)."""
    if not run.exists():
        return None
    try:
        lock = _lock(0)
    except KubeSetupError:
        raise NodeHeld(
            f"the node in {run} is held by a live process (a test run, `make kube-up` still "
            "starting): stop that process first"
        ) from None
    record = run / RECORD
    try:
        if record.exists():
            recorded = json.loads(record.read_text())
            folder, before = Path(recorded["folder"]), host.Footprint.from_json(recorded["before"])
        else:
            folder, before = run, _unrecorded(run)
    except (OSError, ValueError, KeyError) as exc:
        os.close(lock)
        raise KubeSetupError(f"{record} does not say what to take back: {exc}") from None
    stale = RealNode(folder, before, run=run, lock=lock)
    return {"folder": str(folder) if folder != run else "", "left": stale.stop()}


def _unrecorded(run: Path) -> host.Footprint:
    """The machine as it would be without the node in ``run`` that recorded nothing: of what is
    there now, the node's are its processes and cgroups, what is under ``run`` and the bridge;
    the rest (pods' network namespaces, CNI caches, kube-proxy's rules, which a later node
    replaces) is left as it is."""
    now = host.read_footprint(run, CGROUP)

    def outside(path: str) -> bool:
        return path != str(run) and not path.startswith(f"{run}/")

    return dataclasses.replace(
        now,
        processes=frozenset(),
        cgroups=frozenset(),
        mounts=frozenset(filter(outside, now.mounts)),
        files=frozenset(filter(outside, now.files)),
        links=now.links - {BRIDGE},
    )
