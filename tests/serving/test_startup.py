"""What a variant's pods say of its start (controlplane/serving/startup.py): a crash loop past
the restarts that make it certain, an image that cannot be had, and nothing when a retry may
still succeed. The pods are shaped as the kubelet (Kubernetes v1.34) reports them; the real
kubelet's are read in tests/routing/test_real_rollout.py (the ``crash`` candidate)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.serving.startup import (
    CRASH_LOOP_RESTARTS,
    FAILURE_CHARS,
    cannot_start,
    container_failure,
    serving,
)

OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
LOG = f"Loading weights\nTraceback (most recent call last):\n  ...\n{OOM}\n"


def looping(restarts: int, **terminated: Any) -> dict[str, Any]:
    """A ``kserve-container`` in CrashLoopBackOff after ``restarts`` restarts."""
    last = {"reason": "Error", "exitCode": 1, "message": LOG, **terminated}
    return {
        "name": "kserve-container",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": last},
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {
        "name": "kserve-container",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


def pod(name: str, *statuses: dict[str, Any], ready: bool = False, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, **meta},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": list(statuses),
        },
    }


def test_a_crash_loop_is_certain_at_the_restarts_and_says_its_last_exit() -> None:
    assert container_failure(looping(CRASH_LOOP_RESTARTS - 1)) is None
    assert container_failure(looping(CRASH_LOOP_RESTARTS)) == (
        f"container kserve-container restarted {CRASH_LOOP_RESTARTS} times (CrashLoopBackOff), "
        f"last exit code 1: {OOM}"
    )
    assert container_failure(looping(1), restarts=1) is not None


def test_an_oom_kill_is_named_and_a_long_cause_is_cut() -> None:
    got = container_failure(looping(5, reason="OOMKilled", exitCode=137, message=""))
    assert got == "container kserve-container restarted 5 times (CrashLoopBackOff), last OOMKilled"
    long = "RuntimeError: " + "x" * 1000
    cut = container_failure(looping(3, message=long))
    assert cut is not None
    assert len(cut.split("last exit code 1: ", 1)[1]) == FAILURE_CHARS


def test_a_container_running_again_or_ready_is_not_yet_decided() -> None:
    running = {**looping(7), "state": {"running": {"startedAt": "2026-11-27T04:00:00Z"}}}
    assert container_failure(running) is None  # the next reading decides
    assert container_failure({**looping(7), "ready": True}) is None
    terminated = {**looping(4), "state": {"terminated": {"reason": "Error", "exitCode": 2}}}
    assert container_failure(terminated) == (
        "container kserve-container restarted 4 times, last exit code 2"
    )


@pytest.mark.parametrize(
    ("reason", "message", "certain"),
    [
        ("ErrImageNeverPull", 'Container image "engine:v2" is not present with pull policy', True),
        ("InvalidImageName", 'Failed to apply default image tag "Engine::"', True),
        (
            "ErrImagePull",
            'failed to pull and unpack image "registry.example/engine:v9": failed to resolve '
            'reference "registry.example/engine:v9": registry.example/engine:v9: not found',
            True,
        ),
        ("ImagePullBackOff", 'Back-off pulling image "engine:v9": manifest unknown', True),
        ("ImagePullBackOff", 'Back-off pulling image "engine:v9": dial tcp: i/o timeout', False),
        ("ErrImagePull", "", False),
        ("ContainerCreating", "", False),
        ("CreateContainerConfigError", 'secret "hf-token" not found', False),
    ],
)
def test_an_image_that_cannot_be_had_is_certain_a_registry_hiccup_is_not(
    reason: str, message: str, certain: bool
) -> None:
    got = container_failure(waiting(reason, message))
    assert (got is not None) == certain, got
    if certain:
        assert got == f"container kserve-container: {reason}: {message}"


def test_the_variant_cannot_start_when_a_pod_is_certain_and_none_is_ready() -> None:
    bad = pod("llm-nf4-predictor-b", looping(3))
    assert cannot_start([pod("llm-nf4-predictor-a"), bad]) == (
        "pod llm-nf4-predictor-b: container kserve-container restarted 3 times "
        f"(CrashLoopBackOff), last exit code 1: {OOM}"
    )
    # one ready pod: the variant can start, the crash is one node's
    assert cannot_start([pod("a", ready=True), bad]) is None
    # a pod being deleted is the old template's
    assert cannot_start([pod("b", looping(9), deletionTimestamp="2026-11-27T04:00:00Z")]) is None
    assert cannot_start([]) is None
    assert cannot_start([pod("a", looping(2))]) is None
    assert cannot_start([pod("a", looping(2))], restarts=2) is not None


def test_a_variant_serves_while_one_pod_is_ready_and_not_being_deleted() -> None:
    assert serving([pod("a", ready=True), pod("b", looping(3))])
    assert not serving([pod("a"), pod("b", looping(3))])
    assert not serving([pod("a", ready=True, deletionTimestamp="2026-11-27T04:00:00Z")])
    assert not serving([])


def test_an_init_container_in_a_crash_loop_counts() -> None:
    init = {**looping(3), "name": "storage-initializer"}
    pending = pod("llm-nf4-predictor-a")
    pending["status"]["initContainerStatuses"] = [init]
    got = cannot_start([pending])
    assert got is not None
    assert got.startswith("pod llm-nf4-predictor-a: container storage-initializer restarted 3")
