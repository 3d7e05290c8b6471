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


def write(tmp_path: Path, **spec: object) -> Path:
    data = canary_dict(
        stable={**STABLE, "replicas": 2},
        candidate={**CANDIDATE, "replicas": 1},
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
    assert lines[-1].startswith("capacity: at most 4 GPUs at once, rollbacks included: fits")


@pytest.mark.parametrize("router", ["kserve", "kserve-knative"])
def test_a_single_service_router_cannot_follow_traffic(router: str) -> None:
    data = canary_dict(router=router, shadow=None, capacity={"maxGPUs": 8})
    problems = [p for p in check_object(data) if p.path == "spec.capacity"]
    assert problems, check_object(data)
    assert f"the {router} router serves both variants from one InferenceService" in (
        problems[0].message
    )


def test_without_capacity_the_overloaded_step_is_named() -> None:
    canary = model_canary(stable={**STABLE, "replicas": 2}, shadow=None)
    (line,) = plan_lines(canary, load_catalog())
    assert line.startswith("capacity: at step 3 (75 %) the candidate's 1 replica(s) would run at")
