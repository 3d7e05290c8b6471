"""``python -m controlplane.local.vllm_engine``: KServe's runtime flags mapped as its
``huggingfaceserver`` maps them, every other flag left for vLLM's own parser."""

from __future__ import annotations

import pytest

from controlplane.local import vllm_engine
from controlplane.local.vllm_engine import vllm_argv

RUNTIME = ["--model_name=support-llm", "--model_dir=/mnt/models", "--http_port=8080"]


def test_kserves_flags_become_vllms_and_the_rest_is_passed_in_order() -> None:
    product = ["--served-model-name=support-llm", "--max-model-len=8192", "--dtype=float32"]
    assert vllm_argv([*RUNTIME, *product]) == [
        "--model=/mnt/models",
        "--port=8080",
        *product,
    ]


def test_the_model_name_is_the_served_name_when_none_is_given() -> None:
    assert vllm_argv(RUNTIME) == [
        "--model=/mnt/models",
        "--port=8080",
        "--served-model-name=support-llm",
    ]


def test_a_model_id_wins_over_the_model_dir_and_dashes_and_spaces_are_read() -> None:
    argv = ["--model-dir", "/mnt/models", "--model_id", "org/model", "--http-port", "9000"]
    assert vllm_argv(argv) == ["--model=org/model", "--port=9000"]


def test_a_flag_vllm_would_refuse_is_left_for_vllm_to_refuse() -> None:
    assert vllm_argv(["--no-such-flag=1"]) == ["--no-such-flag=1"]


def test_main_becomes_the_server_without_the_images_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(vllm_engine.os, "execv", lambda path, argv: seen.append((path, argv)))
    vllm_engine.main(RUNTIME)
    ((path, argv),) = seen
    assert argv[:4] == [path, "-E", "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[4:] == vllm_argv(RUNTIME)
