"""``spec.capacity`` as validation sees it: a budget the plan cannot hold, a router that cannot
size each variant, both with ``FILE:LINE``; the notes ``validate`` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.canaries import CANDIDATE, STABLE, canary_dict, model_canary

from controlplane.capacity.notes import plan_lines
from controlplane.profiles.catalog import load_catalog
from controlplane.validation import check_file, check_object

RATES = {"stable": 10.0, "candidate": 8.0}


def write(tmp_path: Path, candidate: object = None, **spec: object) -> Path:
    data = canary_dict(
        stable={**STABLE, "replicas": 2},
        candidate=candidate or {**CANDIDATE, "replicas": 1},
        shadow=None,
        **spec,
    )
    path = tmp_path / "canary.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_budget_the_plan_cannot_hold_is_a_problem_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, capacity={"maxGPUs": 3, "requestsPerReplica": RATES})
    (problem,) = check_file(path)
    assert problem.path == "spec.capacity.maxGPUs"
    assert problem.line == path.read_text().splitlines().index("  capacity:") + 2
    assert "step 3 needs 4 GPUs while the weights move" in problem.message
    assert "more than the budget of 3" in problem.message


def test_the_surge_budget_names_its_own_field(tmp_path: Path) -> None:
    path = write(tmp_path, capacity={"maxSurgeGPUs": 1, "requestsPerReplica": RATES})
    (problem,) = check_file(path)
    assert problem.path == "spec.capacity.maxSurgeGPUs"


def test_a_budget_that_holds_is_valid_and_the_plan_is_printed(tmp_path: Path) -> None:
    path = write(tmp_path, capacity={"maxGPUs": 4, "requestsPerReplica": RATES})
    assert check_file(path) == []
    canary = model_canary(
        stable={**STABLE, "replicas": 2},
        shadow=None,
        capacity={"maxGPUs": 4, "requestsPerReplica": RATES},
    )
    lines = plan_lines(canary, load_catalog())
    assert "capacity: step 3: stable 1, candidate 2 (3 GPUs), 4 GPUs while moving in" in lines
    assert lines[-2].startswith("capacity: at most 4 GPUs at once, rollbacks included: fits")
    assert lines[-1].startswith("capacity: the steps hold ")


@pytest.mark.parametrize("router", ["kserve", "kserve-knative"])
def test_a_single_service_router_cannot_follow_traffic(router: str) -> None:
    data = canary_dict(router=router, shadow=None, capacity={"maxGPUs": 8})
    problems = [p for p in check_object(data) if p.path == "spec.capacity"]
    assert problems, check_object(data)
    assert f"the {router} router serves both variants from one InferenceService" in (
        problems[0].message
    )


def test_fixed_replicas_that_overload_a_step_are_refused_on_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, capacity={"mode": "fixed"})
    (problem,) = check_file(path)
    assert problem.path == "spec.capacity.mode"
    assert problem.line == path.read_text().splitlines().index("  capacity:") + 2
    assert problem.message.startswith(
        "capacity: at step 3 (75 %) the candidate's 1 replica(s) would run at 1"
    ), problem.message
    assert "remove mode fixed to follow the plan, or set acceptOverload" in problem.message


def test_an_accepted_overload_is_valid_and_said(tmp_path: Path) -> None:
    capacity = {"mode": "fixed", "acceptOverload": True}
    assert check_file(write(tmp_path, capacity=capacity)) == []
    canary = model_canary(stable={**STABLE, "replicas": 2}, shadow=None, capacity=capacity)
    (line,) = plan_lines(canary, load_catalog())
    assert line.startswith("capacity: at step 3 (75 %) the candidate's 1 replica(s) would run at")
    assert line.endswith("(acceptOverload)")


def test_fixed_replicas_that_serve_every_step_are_valid(tmp_path: Path) -> None:
    fits = {**CANDIDATE, "replicas": 3}
    path = write(tmp_path, capacity={"mode": "fixed"}, candidate=fits)
    assert check_file(path) == []


def test_without_capacity_the_plan_sizes_each_step_and_nothing_is_overloaded() -> None:
    canary = model_canary(stable={**STABLE, "replicas": 2}, shadow=None)
    lines = plan_lines(canary, load_catalog())
    assert not [line for line in lines if "would run at" in line], lines
    assert "capacity: step 3: stable 1, candidate 2 (3 GPUs), 4 GPUs while moving in" in lines
    assert lines[-2].endswith("promoted, the candidate holds 3 GPUs where the stable held 2")
    # steps of 7 days at 3, 3 and 3 GPUs (stable 2 + candidate 1, twice; stable 1 + candidate 2)
    assert lines[-1] == (
        "capacity: the steps hold 1,512 GPU-hours over 21 days, where the stable alone holds "
        "1,008 (+50%)"
    )


@pytest.mark.parametrize("router", ["kserve", "kserve-knative"])
def test_a_single_service_router_may_say_fixed(router: str) -> None:
    data = canary_dict(router=router, shadow=None, capacity={"mode": "fixed"})
    assert [p for p in check_object(data) if p.path.startswith("spec.capacity")] == []


def test_fixed_replicas_that_the_quality_judges_pairs_overload_are_refused(
    tmp_path: Path,
) -> None:
    """The replicas that serve every step's share are refused once the pairer's requests, one
    to each variant per pair, take them past what they serve."""
    fits = {**CANDIDATE, "replicas": 2}  # 16 req/s: 12 at 75 %, 16 at 100 %
    quality = {"sample": "50%", "perMinute": 100_000, "tolerance": 0.1}  # 8 req/s of pairs
    fixed = {"mode": "fixed", "requestsPerReplica": RATES}
    assert check_file(write(tmp_path, capacity=fixed, candidate=fits)) == []
    path = write(tmp_path, capacity=fixed, candidate=fits, router="gateway-api", quality=quality)
    (problem,) = check_file(path)
    assert problem.path == "spec.capacity.mode"
    assert problem.message.startswith(
        "capacity: at step 3 (75 %) the candidate's 2 replica(s) would run at 125% "
    ), problem.message
