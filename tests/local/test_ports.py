"""``controlplane.local.ports``: loopback ports drawn below the kernel's ephemeral range."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from controlplane.local import ports


def test_the_ephemeral_start_is_read_from_the_kernels_range() -> None:
    assert ports.ephemeral_start("40000\t60999\n") == 40000
    assert ports.ephemeral_start("") == 32768
    assert ports.ephemeral_start("not a number") == 32768
    with open("/proc/sys/net/ipv4/ip_local_port_range") as kernel:
        assert ports.ephemeral_start() == int(kernel.read().split()[0])


def test_ports_come_from_below_the_ephemeral_and_node_port_ranges_once_each() -> None:
    high = min(ports.ephemeral_start(), ports.NODE_PORTS)
    drawn = [ports.free_port() for _ in range(50)]
    assert all(ports.LOW <= port < high for port in drawn), drawn
    assert len(set(drawn)) == len(drawn)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", drawn[-1]))  # nothing holds it


class _Scripted:
    """Draws the given ports in order (stands in for the module's random source)."""

    def __init__(self, order: list[int]) -> None:
        self.order: Iterator[int] = iter(order)

    def randrange(self, low: int, high: int) -> int:
        return next(self.order)


def test_a_port_in_use_or_handed_out_before_is_passed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as after the tests before this one on its worker: the lowest port was handed out already
    monkeypatch.setattr(ports, "_handed", ports._handed | {ports.LOW})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        handed = ports.free_port()
        # a port free now that this process never handed out: not simply the lowest, which
        # an earlier test on this worker, or a program it started, may hold
        wanted = next(
            p
            for p in range(ports.LOW, ports.NODE_PORTS)
            if p not in {busy, handed} and p not in ports._handed and ports._bindable(p)
        )
        monkeypatch.setattr(ports, "_draw", _Scripted([busy, handed, wanted]))
        assert ports.free_port() == wanted


def test_with_no_span_below_the_ephemeral_range_the_kernel_chooses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel = ports.ephemeral_start()
    monkeypatch.setattr(ports, "ephemeral_start", lambda text=None: ports.LOW)
    monkeypatch.setattr(ports, "_draw", _Scripted([]))  # a draw would raise StopIteration
    port = ports.free_port()
    assert port >= kernel  # the kernel's own choice, from its ephemeral range
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
