"""``controlplane.controller.pairs``: the controller reads a live pairer, through the API
server's Service proxy (here the fake's, sent on to the pairer), into the machine's reading,
page by page, and a pairer it cannot read is a failed read that keeps the test."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from support.canaries import model_canary
from support.pairs import CANDIDATE, STABLE, Upstream
from support.realnode import until

from controlplane.controller.pairs import ServicePairs, read_quality
from controlplane.local.ports import free_port
from controlplane.pairing.pairer import Pairer
from controlplane.serving.pairer import PORTS, pairer_name
from controlplane.spec.models import ModelCanary
from harness.kube.fake import FakeKube

QUALITY = {"sample": "5%", "metric": "agreement", "tolerance": 0.5, "alpha": 0.05}


@pytest.fixture
def pairer() -> Iterator[Pairer]:
    """A pairer between two vLLM-shaped upstreams, on a loop of its own thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    made: dict[str, Any] = {}

    async def start() -> None:
        made["stable"], made["candidate"] = Upstream("s", STABLE), Upstream("c", CANDIDATE)
        await made["stable"].start()
        await made["candidate"].start()
        made["pairer"] = Pairer(made["stable"].url, made["candidate"].url, seed=1)
        await made["pairer"].start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield made["pairer"]

    async def stop() -> None:
        for key in ("pairer", "stable", "candidate"):
            await made[key].stop()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


def send(pairer: Pairer, prompt: str, n: int) -> None:
    """``n`` completions through the stable's port, then a wait until each pair is scored (on
    the pairer's loop, after the answer): its journal's last sequence number has moved on."""
    scored = pairer.journal.last + n
    for _ in range(n):
        body = json.dumps({"model": "m", "prompt": prompt}).encode()
        request = urllib.request.Request(
            pairer.url("stable") + "/v1/completions", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
    until(lambda: pairer.journal.last >= scored, f"{n} pairs scored", timeout=60, every=0.01)


def reader_of(canary: ModelCanary, base_url: str | None) -> ServicePairs:
    """The controller's reader on a fake cluster with ``canary``'s pairer Service, whose stable
    port reaches ``base_url`` (None: no ready endpoint)."""
    kube = FakeKube()
    namespace, name = canary.metadata.namespace, pairer_name(canary)
    meta = {"name": name, "namespace": namespace}
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {}})
    kube.serve_service(namespace, name, PORTS["stable"], base_url)
    return ServicePairs(kube, timeout_s=2)


def test_each_evaluation_folds_the_pairs_since_the_last(pairer: Pairer) -> None:
    canary = model_canary("chat", "ml", quality=QUALITY)
    reader = reader_of(canary, pairer.url("stable"))
    send(pairer, "Bye", 3)  # the same answer on both: agreement 1
    reading = read_quality(reader, canary, None)
    assert (reading.epoch, reading.seq, reading.pairs, reading.error) == (
        pairer.journal.epoch,
        3,
        3,
        "",
    )
    send(pairer, "Hello", 2)  # answers that differ at the second token: agreement 1/3
    reading = read_quality(reader, canary, reading)
    assert (reading.seq, reading.pairs) == (5, 5)
    assert reading.total == pytest.approx(2 * (1 - 1 / 3))
    assert read_quality(reader, canary, reading) == reading  # nothing new


@pytest.mark.parametrize("reachable", [False, True], ids=["no-endpoint", "refused"])
def test_a_pairer_that_cannot_be_read_is_a_failed_read_that_keeps_the_test(
    reachable: bool,
) -> None:
    canary = model_canary("chat", "ml", quality=QUALITY)
    reader = reader_of(canary, f"http://127.0.0.1:{free_port()}" if reachable else None)
    before = read_quality(reader, canary, None)
    assert before.pairs == 0
    assert "the pairer ml/chat-pairer could not be read through the API server: 503" in (
        before.error
    ), before.error
