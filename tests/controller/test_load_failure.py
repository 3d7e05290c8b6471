"""What the controller says of a served object whose model failed to load
(:func:`controlplane.serving.startup.load_failure`), on the status KServe v0.20.0 writes."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.local.serve import crash_message, parse_args
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.startup import FAILURE_CHARS, load_failure, root_cause


def isvc(model_status: dict[str, Any] | None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "False"}]}
    if model_status is not None:
        status["modelStatus"] = model_status
    return {"kind": "InferenceService", "metadata": {"name": "chat-llm-nf4"}, "status": status}


def failed(message: str, exit_code: int | None = 1) -> dict[str, Any]:
    """KServe's PropagateModelStatus for a kserve-container in CrashLoopBackOff."""
    info: dict[str, Any] = {"reason": "ModelLoadFailed", "message": message}
    if exit_code is not None:
        info["exitCode"] = exit_code
    return isvc(
        {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": info,
        }
    )


def test_the_cause_not_vllm_s_wrapper_is_the_reason() -> None:
    log = (
        "INFO loading weights\n"
        "Traceback (most recent call last):\n"
        "  ...\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "Traceback (most recent call last):\n"
        "RuntimeError: Engine core initialization failed. See root cause above. "
        "Failed core proc(s): {'EngineCore_DP0': 1}\n"
    )
    assert root_cause(log) == (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )


@pytest.mark.parametrize(
    ("log", "cause"),
    [
        pytest.param("a\nValueError: bad\nb\n", "ValueError: bad", id="last-exception"),
        pytest.param(
            "RuntimeError: x. See root cause above.",
            "RuntimeError: x. See root cause above.",
            id="only-a-wrapper",
        ),
        pytest.param("starting\nkilled\n\n", "killed", id="no-exception"),
        pytest.param("\n  \n", None, id="empty"),
    ],
)
def test_root_cause(log: str, cause: str | None) -> None:
    assert root_cause(log) == cause


def test_the_simulated_engine_s_crash_log_gives_torch_s_error() -> None:
    config = parse_args(["--model=m", "--inject=crash-on-start"])
    got = root_cause(crash_message(config, load_catalog()))
    assert got is not None
    assert got.startswith("torch.OutOfMemoryError: CUDA out of memory."), got


def test_the_last_line_of_the_engine_s_log_is_the_reason() -> None:
    log = (
        "INFO loading weights\n"
        "Traceback (most recent call last):\n"
        "  ...\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n\n"
    )
    assert load_failure(failed(log)) == (
        "InferenceService chat-llm-nf4 failed to load (ModelLoadFailed, exit code 1): "
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )


def test_a_long_last_line_is_cut() -> None:
    got = load_failure(failed("x" * 5000))
    assert got is not None
    assert got.endswith("\u2026")
    assert len(got.split(": ", 1)[1]) == FAILURE_CHARS


def test_no_message_still_says_the_model_failed() -> None:
    assert load_failure(failed("", exit_code=None)) == (
        "InferenceService chat-llm-nf4 failed to load (ModelLoadFailed)"
    )


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(isvc(None), id="no-model-status"),
        pytest.param(isvc({"transitionStatus": "InProgress"}), id="loading"),
        pytest.param(
            isvc({"states": {"targetModelState": "Pending"}, "transitionStatus": "InProgress"}),
            id="pending",
        ),
        pytest.param(isvc({"states": "garbage", "lastFailureInfo": "garbage"}), id="malformed"),
    ],
)
def test_nothing_is_said_while_no_load_failed(obj: dict[str, Any]) -> None:
    assert load_failure(obj) is None


def test_either_of_kserve_s_two_marks_is_a_failure() -> None:
    only_state = isvc({"states": {"targetModelState": "FailedToLoad"}})
    only_transition = isvc({"transitionStatus": "BlockedByFailedLoad"})
    assert load_failure(only_state) == "InferenceService chat-llm-nf4 failed to load"
    assert load_failure(only_transition) == "InferenceService chat-llm-nf4 failed to load"
