"""Loopback ports for the child processes this package and the test harness start.

A port is chosen here, then bound by a child a moment later. One the kernel hands out for
``bind(port 0)`` comes from its ephemeral range (``net.ipv4.ip_local_port_range``: 32768-60999 by
default, Linux ``Documentation/networking/ip-sysctl.rst``, as this machine's 6.18 kernel reads),
which every outgoing connection on the machine draws from too, so a busy machine can take it in
that moment (an API server's ``bind: address already in use``). :func:`free_port` draws below
that range instead, and never from Kubernetes' default NodePort range (30000-32767:
``DefaultServiceNodePortRange`` in ``pkg/kubeapiserver/options/options.go``, v1.34.10), and it
hands a port out once per process. Called by the local stack (Prometheus, the vLLM engine) and by
the harness and its tests, for everything they start.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOW = 20000
"""The lowest port drawn."""
NODE_PORTS = 30000
"""Kubernetes' default ``--service-node-port-range`` starts here (30000-32767); never drawn."""

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed: set[int] = set()
_draw = random.SystemRandom()


def ephemeral_start(text: str | None = None) -> int:
    """Where the kernel's ephemeral ports begin (``text`` is the range file's content; read from
    the running kernel when ``None``); 32768, the kernel's default, when it cannot be read."""
    if text is None:
        try:
            text = _RANGE_FILE.read_text()
        except OSError:
            return 32768
    try:
        return int(text.split()[0])
    except (IndexError, ValueError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(attempts: int = 200) -> int:
    """A loopback TCP port nothing listens on now, drawn from ``[LOW, min(ephemeral start,
    NODE_PORTS))`` and never handed out before by this process; the kernel's choice (port 0)
    when that span is empty or ``attempts`` draws found nothing free."""
    high = min(ephemeral_start(), NODE_PORTS)
    for _ in range(attempts if high > LOW else 0):
        port = _draw.randrange(LOW, high)
        if port not in _handed and _bindable(port):
            _handed.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
    _handed.add(chosen)
    return chosen
