"""``canaryctl up``'s replicas: as many servers per variant as it has replicas, following the plan.

Two short runs of the local stack (simulated engine, a real Prometheus, the local router), on a
checks-free schedule of the demo model (10 % and 50 % for 30m each, then all traffic) at
``--time-scale 900`` (2 s a step), with ``--max-num-seqs 4``, 4 requests per second and a stable
of 2 replicas:

- ``fixed``: no ``spec.capacity``: stable 2 and candidate 1 servers throughout, the router
  spreading each variant's share over its replicas, Prometheus scraping each as a target of its
  own (``pod`` label);
- ``planned``: ``capacity: {maxGPUs: 4}``: the candidate's replicas follow the plan (up before its
  weight rises), the stable's go down after, retired replicas drain (no request fails), and the
  GPUs held never exceed the budget.

Both report GPU-hours in spec time against both variants at full size. And the router alone: an
endpoint taken out while its requests are in flight lets them finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from support.canaries import canary_dict, model_canary
from support.local import Backend

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.capacity import plan
from controlplane.capacity.estimate import sizes_of
from controlplane.cli.up import capacity_line
from controlplane.local.display import ProgressFrame
from controlplane.local.router import Backend as Target
from controlplane.local.router import LocalRouter
from controlplane.local.server import VARIANT_HEADER
from controlplane.local.stack import UpConfig, UpResult, run_up
from controlplane.profiles.catalog import load_catalog
from controlplane.promql import queries
from controlplane.routing.memory import MemoryRouter
from controlplane.simulation import SimulationResult
from controlplane.spec.models import ModelCanary

VARIANT = {
    "storageUri": "hf://meta-llama/Llama-3.2-1B-Instruct",
    "gpu": "nvidia-l4",
    "args": ["--max-num-seqs", "4"],
}
BASE = canary_dict(
    "replicas",
    "default",
    model={"name": "demo-llm", "maxModelLen": 4096, "parameters": 1.0e9},
    stable={**VARIANT, "name": "bf16", "quantization": "none", "replicas": 2},
    candidate={**VARIANT, "name": "nf4", "quantization": "bitsandbytes-nf4", "replicas": 1},
    analysis={"interval": "1m", "window": "10m"},
    steps=[
        {"weight": 10, "duration": "30m"},
        {"weight": 50, "duration": "30m"},
        {"weight": 100},
    ],
    shadow=None,
    budget=None,
    alerts=[],
)
CONFIG = UpConfig(time_scale=900, load_rps=4, seed=3, scrape_interval=0.5, max_time_s=60)
BUDGET = 4


class Quiet:
    """A display that shows nothing."""

    def start(self, lines: list[str]) -> None:
        return None

    def update(self, snap: ProgressFrame) -> None:
        return None

    def stop(self) -> None:
        return None

    def print(self, line: str) -> None:
        return None


CANARIES = {
    False: model_canary(base=BASE, capacity={"mode": "fixed", "acceptOverload": True}),
    True: model_canary(base=BASE, capacity={"maxGPUs": BUDGET}),
}
"""The canary with fixed replicas (False) and with replicas that follow the plan (True)."""


Probe = Callable[[ModelCanary, MetricProvider, float], Any]


def run(planned: bool, probe: Probe | None = None) -> tuple[UpResult, Any]:
    """One ``up`` run; ``probe`` asks the live Prometheus before the stack stops."""
    seen: list[Any] = []

    def plot(result: SimulationResult, provider: MetricProvider) -> object:
        if probe is not None:
            seen.append(probe(result.canary, provider, result.end))
        return None

    result = asyncio.run(run_up(CANARIES[planned], CONFIG, Quiet(), plot=plot))
    return result, seen[0] if seen else None


def pods(spec: ModelCanary, provider: MetricProvider, at: float) -> dict[str, Any]:
    """What Prometheus sees: the pods of each variant, and the stable's request rate by the
    canary's own query against the sum of its pods' rates."""
    vector = getattr(provider, "vector")  # noqa: B009 - the PrometheusProvider extension
    out: dict[str, Any] = {}
    for variant in ("bf16", "nf4"):
        series = vector(
            f'count by (pod, instance) (vllm:num_requests_running{{variant="{variant}"}})', at
        )
        out[variant] = sorted(labels["pod"] for labels, _ in series)
    rate = queries.canary_builtin_query(spec, "request-rate", "bf16", 2.0)
    per_pod = vector('sum by (pod) (rate(vllm:request_success_total{variant="bf16"}[2s]))', at)
    out["rate"] = (provider.instant(rate, at), sum(v for _, v in per_pod))
    return out


@pytest.fixture(scope="module")
def fixed() -> tuple[UpResult, Any]:
    return run(False, pods)


@pytest.fixture(scope="module")
def planned() -> tuple[UpResult, Any]:
    return run(True)


@pytest.mark.binary
@pytest.mark.slow
def test_without_capacity_each_variant_runs_its_replicas(fixed: tuple[UpResult, Any]) -> None:
    result, seen = fixed
    assert result.outcome == "promoted", result.state.history
    report = result.capacity
    assert report is not None
    assert not report.planned
    assert {(p.stable, p.candidate) for p in report.points} == {(2, 1)}
    assert report.peak_gpus == 3
    # one server per replica, each named as a pod; the router spreads the stable's share
    by_replica = result.by_replica
    assert set(by_replica) == {"demo-llm-bf16-0", "demo-llm-bf16-1", "demo-llm-nf4-0"}
    one, two = by_replica["demo-llm-bf16-0"], by_replica["demo-llm-bf16-1"]
    assert min(one, two) > 0.3 * (one + two), by_replica
    # Prometheus scrapes each replica as a target of its own; the queries sum over them
    assert seen["bf16"] == ["demo-llm-bf16-0", "demo-llm-bf16-1"]
    assert seen["nf4"] == ["demo-llm-nf4-0"]
    canary_rate, summed = seen["rate"]
    assert canary_rate == pytest.approx(summed)
    assert set(result.load.status) == {200}


@pytest.mark.binary
@pytest.mark.slow
def test_with_capacity_the_replicas_follow_the_plan(planned: tuple[UpResult, Any]) -> None:
    result, _ = planned
    assert result.outcome == "promoted", result.state.history
    report = result.capacity
    assert report is not None
    assert report.planned
    assert report.budget_gpus == BUDGET
    spec = CANARIES[True]
    sizes = sizes_of(spec, load_catalog())
    demand = plan.sized_demand(spec, sizes)
    points = report.points
    for p in points:  # never a moment with a variant's share on fewer replicas than planned
        want = plan.replicas_at(spec, sizes, demand, plan.Share(p.weight, p.mirror))
        assert p.candidate >= want.candidate, p
        assert p.stable >= want.stable, p
        assert p.gpus <= BUDGET, p
    assert report.peak_gpus == BUDGET  # the plan's peak: 4 GPUs while step 2 moves in
    # up before the weights rise: the candidate has 2 before 50 %, 3 before 100 %
    first = {w: next(p for p in points if p.weight == w) for w in (10, 50, 100)}
    assert (first[50].stable, first[50].candidate) == (2, 2)
    assert first[100].candidate == 3
    # down after: at 50 % the stable goes from 2 to 1 only once the weights moved
    at_half = [(p.stable, p.candidate) for p in points if p.weight == 50]
    assert at_half[0] == (2, 2)
    assert (1, 2) in at_half
    assert result.by_replica["demo-llm-bf16-1"] > 0  # it served, then was retired
    assert result.by_replica["demo-llm-nf4-1"] > 0
    # the retired stable replica drained: no request failed
    assert set(result.load.status) == {200}, result.load.status
    assert not result.load.failures


@pytest.mark.binary
@pytest.mark.slow
def test_the_result_reports_gpu_hours(
    fixed: tuple[UpResult, Any], planned: tuple[UpResult, Any]
) -> None:
    for result, gpus in ((fixed[0], 3), (planned[0], None)):
        report = result.capacity
        assert report is not None
        assert report.spec_hours > 1.0  # two 30m steps, and the scale-ups
        assert report.full_size == plan.Replicas(2, 3)  # the candidate sized for all traffic
        assert report.full_size_gpus == 5
        assert report.full_size_gpu_hours == pytest.approx(5 * report.spec_hours)
        assert 0 < report.gpu_hours < report.full_size_gpu_hours
        if gpus is not None:
            assert report.gpu_hours == pytest.approx(gpus * report.spec_hours, rel=0.01)
        data = result.to_json()["capacity"]
        assert data["peakGPUs"] == report.peak_gpus
        assert data["fullSize"]["gpuHours"] == pytest.approx(report.full_size_gpu_hours, abs=1e-3)
        line = capacity_line(result)
        assert line is not None
        assert "GPU-hours" in line
        assert "full size (stable 2 + candidate 3 replicas, 5 GPUs)" in line
    assert "of a 4-GPU budget" in (capacity_line(planned[0]) or "")


def test_an_endpoint_taken_out_drains_its_requests() -> None:
    async def main() -> None:
        # each request is held 2 s: long enough that those seen arriving are still in flight
        one, two = Backend("bf16", 2.0, 3), Backend("bf16", 2.0, 3)
        candidate = Backend("nf4")
        for backend in (one, two, candidate):
            await backend.start()
        memory = MemoryRouter(check_capabilities=False)
        spec = CANARIES[False]
        memory.set_weights(spec, 0, False)
        router = LocalRouter(
            "replicas",
            "default",
            Target("bf16", one.url),
            Target("nf4", candidate.url),
            lambda: memory.get_weights(spec),
            seed=1,
        )
        await router.start()
        router.add_endpoint("bf16", two.url)
        try:
            async with aiohttp.ClientSession() as session:

                async def send() -> tuple[int, str]:
                    async with session.post(router.url + "/v1/chat/completions", data=b"{}") as r:
                        return r.status, r.headers.get(VARIANT_HEADER, "") + await r.text()

                first = [asyncio.create_task(send()) for _ in range(10)]
                for _ in range(3000):  # until some are in flight on the second endpoint
                    if two.received:
                        break
                    await asyncio.sleep(0.01)
                assert two.received > 0
                endpoint = router.remove_endpoint("bf16", two.url)
                assert endpoint is not None
                assert endpoint.outstanding > 0
                assert router.endpoints("bf16") == [one.url]
                later = [asyncio.create_task(send()) for _ in range(5)]
                taken = two.received
                assert await router.drain(endpoint, timeout_s=10)
                await two.stop()  # stopped only once drained
                answers = await asyncio.gather(*first, *later)
        finally:
            await router.stop()
            for backend in (one, two, candidate):
                await backend.stop()
        assert all(status == 200 for status, _ in answers), answers
        assert two.received == taken  # nothing new went to it once out of rotation

    asyncio.run(main())
