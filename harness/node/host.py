"""What a real node changes on this machine, read before and after, and taken back.

Owns :class:`Footprint`: the processes, mounts, network namespaces, links, iptables rules,
cgroups and files that kubelet, containerd, runc and the CNI plugins create outside the node's
own folder, read from ``/proc`` and the kernel's tools. :func:`read_footprint` takes one reading;
:meth:`Footprint.left_over` says what a later reading has that an earlier one had not (what
``make kube-down`` must leave nothing of; ``tests/harness/test_node.py`` checks it).
:func:`take_back` removes what a node left, in the order the kernel lets go of it: processes,
mounts, network namespaces, links, cgroups, files. Called by :mod:`harness.node.node`.

Where they come from, as observed with Kubernetes v1.34.10, containerd 1.6.20 and runc 1.1.5
(Debian bookworm) and read in their sources:

- containerd keeps shim sockets in ``/run/containerd/s`` and FIFOs in ``/run/containerd/fifo``
  whatever its ``state`` folder says; CRI bind-mounts each pod's network namespace at
  ``/run/netns/cni-<uuid>``;
- libcni caches each attachment's result in ``/var/lib/cni/results``;
- kubelet hard-codes ``/var/lib/kubelet/device-plugins`` and the ``/var/log/containers`` links;
- the CNI ``bridge`` plugin turns on ``net.ipv4.ip_forward`` on every ADD (``cmdAdd`` calls
  ``ip.EnableForward``, ``plugins/main/bridge/bridge.go``; docs/testing.md says which source);
- kube-proxy (iptables mode, :mod:`harness.node.services`) writes its ``KUBE-`` chains and the
  rules that jump to them in the ``filter``, ``nat`` and ``mangle`` tables of both IPv4 and IPv6
  (``pkg/proxy/iptables/proxier.go``: a proxier per family the host supports), and kubelet a few
  ``KUBE-`` chains of its own; both are read and taken back, IPv6 prefixed ``6/``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GLOBAL_DIRS = (
    Path("/run/containerd"),
    Path("/run/netns"),
    Path("/var/lib/cni"),
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
)
"""Folders outside the node's own that its programs write into (hard-coded upstream)."""
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
CGROUP_ROOT = Path("/sys/fs/cgroup")
TABLES = ("filter", "nat", "mangle")
KINDS = ("processes", "mounts", "netns", "links", "iptables", "cgroups", "files")
"""The kinds of :class:`Footprint` that are sets."""


@dataclass(frozen=True)
class Footprint:
    """One reading of everything a node could leave behind on the machine."""

    processes: frozenset[str]
    """``pid command line`` of every process whose command line names ``marker``."""
    mounts: frozenset[str]
    """Mount points under the node's folder or ``/run/netns``."""
    netns: frozenset[str]
    links: frozenset[str]
    iptables: frozenset[str]
    cgroups: frozenset[str]
    files: frozenset[str]
    """Every path under :data:`GLOBAL_DIRS` and the node's state folder (the folders themselves
    included)."""
    ip_forward: str

    def to_json(self) -> dict[str, Any]:
        """For ``make kube-up``'s state file: ``make kube-down`` takes the node back from it."""
        return {
            kind: sorted(value) if isinstance(value, frozenset) else value
            for kind, value in vars(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Footprint:
        sets = {kind: frozenset(data[kind]) for kind in KINDS}
        return cls(**sets, ip_forward=str(data["ip_forward"]))

    def left_over(self, before: Footprint) -> dict[str, list[str]]:
        """What this reading has that ``before`` had not, per kind (empty when nothing)."""
        out: dict[str, list[str]] = {}
        for kind in KINDS:
            new = sorted(getattr(self, kind) - getattr(before, kind))
            if new:
                out[kind] = new
        if self.ip_forward != before.ip_forward:
            out["ip_forward"] = [f"{before.ip_forward} -> {self.ip_forward}"]
        return out


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return ""
    return done.stdout


def node_processes(folder: Path, cgroup: str) -> dict[int, str]:
    """Every process whose command line names the node's ``folder`` (containerd, its shims,
    kubelet) or that runs in a cgroup under the node's cgroup root (the containers): pid ->
    command line."""
    found: dict[int, str] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            groups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if (str(folder) in cmd or f":/{cgroup}/" in groups) and not _zombie(int(entry.name)):
            found[int(entry.name)] = cmd.strip()
    return found


def _mounts(roots: Iterable[Path]) -> list[str]:
    prefixes = [str(r).rstrip("/") + "/" for r in roots]
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            point = line.split()[1].replace("\\040", " ")
            if any(point.startswith(p) or point + "/" == p for p in prefixes):
                points.append(point)
    return points


def _listing(roots: Iterable[Path]) -> set[str]:
    out: set[str] = set()
    for root in roots:
        if not root.exists():
            continue
        out.add(str(root))
        for dirpath, dirnames, filenames in os.walk(root):
            out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


def _cgroups(name: str) -> set[str]:
    out: set[str] = set()
    if not CGROUP_ROOT.is_dir():
        return out
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if top.is_dir():
            out.update(dirpath for dirpath, _, _ in os.walk(top))
    return out


def _iptables() -> set[str]:
    """``TABLE -A CHAIN ...`` for every rule, ``TABLE :CHAIN`` for every CNI and kube-proxy chain
    (``KUBE-``; kubelet makes a few too), of IPv4; the same prefixed ``6/`` for IPv6 (kube-proxy
    writes both families where the kernel has IPv6)."""
    out = set()
    for family, save in (("", "iptables-save"), ("6/", "ip6tables-save")):
        for table in TABLES:
            for line in _run([save, "-t", table]).splitlines():
                if line.startswith("-A "):
                    out.add(f"{family}{table} {line}")
                elif line.startswith((":CNI", ":KUBE-")):
                    out.add(f"{family}{table} {line.split()[0]}")
    return out


def read_footprint(folder: Path, cgroup: str) -> Footprint:
    """Read the machine now; ``folder`` is the node's state folder (every node process names it
    on its command line), ``cgroup`` its cgroup root's name
    (``/sys/fs/cgroup/<hierarchy>/<cgroup>``)."""
    links = _run(["ip", "-o", "link", "show"]).splitlines()
    return Footprint(
        processes=frozenset(f"{p} {c}" for p, c in node_processes(folder, cgroup).items()),
        mounts=frozenset(_mounts([folder, Path("/run/netns")])),
        netns=frozenset(line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines()),
        links=frozenset(
            line.split(":", 2)[1].split("@")[0].strip() for line in links if ":" in line
        ),
        iptables=frozenset(_iptables()),
        cgroups=frozenset(_cgroups(cgroup)),
        files=frozenset(_listing([*GLOBAL_DIRS, folder])),
        ip_forward=IP_FORWARD.read_text().strip() if IP_FORWARD.exists() else "",
    )


def kill_all(folder: Path, cgroup: str, timeout: float = 10.0) -> None:
    """SIGTERM every process of the node (see :func:`node_processes`), then SIGKILL what is
    left after ``timeout``, and wait until none is."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in node_processes(folder, cgroup):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node_processes(folder, cgroup):
                return
            time.sleep(0.1)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie, or gone); reaps it when it is our own child."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return True
    return False


def take_back(before: Footprint, folder: Path, cgroup: str, bridge: str) -> dict[str, list[str]]:
    """Remove what the node left since ``before``; returns what is left over after (empty when
    all went)."""
    kill_all(folder, cgroup)
    now = read_footprint(folder, cgroup)
    # deepest mount first: an overlay inside a folder that is itself a mount
    for point in sorted(now.mounts - before.mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for name in now.netns - before.netns:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    # the host ends of the pods' veth pairs go with their namespaces, but the kernel frees a
    # namespace asynchronously: delete them (and the bridge) rather than wait on it
    for link in sorted(now.links - before.links, key=lambda name: name == bridge):
        subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
    # rules (" -A") before the chains (" :") they jump to; a chain another chain jumps to goes
    # only once that one is flushed: a second round takes what the first could not
    for _ in range(2):
        for entry in sorted(_iptables() - before.iptables, key=lambda e: " :" in e):
            _undo_iptables(entry)
    for path in sorted(now.cgroups - before.cgroups, key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(path)
    for path in sorted(now.files - before.files, key=len, reverse=True):
        p = Path(path)
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
    if before.ip_forward and now.ip_forward != before.ip_forward:
        with contextlib.suppress(OSError):
            IP_FORWARD.write_text(before.ip_forward)
    deadline = time.monotonic() + 10  # what the kernel lets go of asynchronously
    while (
        left := read_footprint(folder, cgroup).left_over(before)
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _undo_iptables(entry: str) -> None:
    """Delete one rule (``TABLE -A CHAIN ...``) or chain (``TABLE :CHAIN``) of :func:`_iptables`."""
    table, line = entry.split(" ", 1)
    tool = "iptables"
    if table.startswith("6/"):
        tool, table = "ip6tables", table[2:]
    if line.startswith("-A "):
        argv = [tool, "-t", table, "-D", *shlex.split(line[3:])]
    else:
        subprocess.run([tool, "-t", table, "-F", line[1:]], capture_output=True, check=False)
        argv = [tool, "-t", table, "-X", line[1:]]
    subprocess.run(argv, capture_output=True, check=False)
