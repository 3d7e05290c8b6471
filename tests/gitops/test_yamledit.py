"""The pure candidate edit: exact text out, byte-identical outside the candidate mapping."""

from __future__ import annotations

import pytest
from support.gitops_world import CANDIDATE_FP8, CANDIDATE_NF4, HEADER, OTHER_DOC, TAIL, canary_file

from controlplane.errors import WriteBackError
from controlplane.gitops.yamledit import candidate_of, replace_candidate, same_variant

SECTION = "  gitWriteBack: {}\n"


def test_restores_the_earlier_candidate_text_with_its_comments() -> None:
    current = canary_file(CANDIDATE_NF4, SECTION)
    previous = canary_file(CANDIDATE_FP8, SECTION)
    edit = replace_candidate(current, "support-triage", "ml-serving", previous)
    assert edit.text == HEADER + CANDIDATE_FP8 + TAIL + SECTION + OTHER_DOC
    assert edit.before["name"] == "nf4"
    assert edit.after == {
        "name": "fp8",
        "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        "quantization": "fp8",
        "gpu": "nvidia-l40s",
    }
    assert edit.first_line == HEADER.count("\n") + 2  # the line after "candidate:"


def test_without_an_earlier_version_the_candidate_copies_stable_and_keeps_its_name() -> None:
    current = canary_file(CANDIDATE_NF4, SECTION)
    edit = replace_candidate(current, "support-triage", "ml-serving", None)
    expected_block = (
        "  candidate:                        # what we want to roll out\n"
        "    name: nf4\n"
        "    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct\n"
        "    quantization: none\n"
        "    gpu: nvidia-l40s\n"
        "    replicas: 2\n"
    )
    assert edit.text == HEADER + expected_block + TAIL + SECTION + OTHER_DOC
    assert candidate_of(edit.text, "support-triage", "ml-serving") == edit.after


def test_the_other_document_of_a_file_can_be_edited_alone() -> None:
    current = canary_file(CANDIDATE_NF4, SECTION)
    previous = current.replace("quantization: awq, gpu", "quantization: gptq, gpu")
    previous = previous.replace("Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "Llama-GPTQ")
    edit = replace_candidate(current, "summarizer", "ml-serving", previous)
    # the flow mapping is replaced in place; the first document is untouched
    assert edit.text.startswith(HEADER + CANDIDATE_NF4 + TAIL + SECTION)
    assert edit.text == previous
    assert edit.after["quantization"] == "gptq"


def test_indentation_differences_are_adapted() -> None:
    current = canary_file(CANDIDATE_NF4, SECTION)
    previous = canary_file(CANDIDATE_FP8.replace("\n    ", "\n        "), SECTION)
    edit = replace_candidate(current, "support-triage", "ml-serving", previous)
    assert edit.text == HEADER + CANDIDATE_FP8 + TAIL + SECTION + OTHER_DOC


def test_block_to_flow_is_rendered_and_verified() -> None:
    flow = "  candidate: {name: fp8, storageUri: 'hf://m/x', quantization: fp8, gpu: nvidia-l40s}\n"
    current = canary_file(CANDIDATE_NF4, SECTION)
    previous = canary_file(flow, SECTION)
    edit = replace_candidate(current, "support-triage", "ml-serving", previous)
    block = (
        "  candidate:                        # what we want to roll out\n"
        "    name: fp8\n"
        "    storageUri: hf://m/x\n"
        "    quantization: fp8\n"
        "    gpu: nvidia-l40s\n"
    )
    assert edit.text == HEADER + block + TAIL + SECTION + OTHER_DOC


def test_a_missing_canary_or_candidate_is_a_clear_error() -> None:
    current = canary_file(CANDIDATE_NF4, SECTION)
    with pytest.raises(WriteBackError, match="no ModelCanary ml-serving/nope in the file"):
        replace_candidate(current, "nope", "ml-serving", None)
    with pytest.raises(WriteBackError, match="no ModelCanary other-ns/support-triage"):
        replace_candidate(current, "support-triage", "other-ns", None)
    no_candidate = HEADER + TAIL
    with pytest.raises(WriteBackError, match=r"no spec\.candidate"):
        replace_candidate(no_candidate, "support-triage", "ml-serving", None)
    with pytest.raises(WriteBackError, match="not YAML"):
        replace_candidate("a: [", "support-triage", None, None)


def test_same_variant_counts_defaults_as_written() -> None:
    a = {"name": "x", "storageUri": "hf://a", "gpu": "g"}
    assert same_variant(a, {**a, "replicas": 1, "quantization": "none"})
    assert not same_variant(a, {**a, "replicas": 2})


def test_an_adopted_stable_is_never_copied_over_the_candidate() -> None:
    current = canary_file(CANDIDATE_NF4, SECTION)
    start = current.index("  stable:")
    end = current.index("  candidate:")
    adopted = "  stable: {name: live, targetRef: {name: chat}}\n"
    current = current[:start] + adopted + current[end:]
    with pytest.raises(WriteBackError, match="revert the candidate by hand"):
        replace_candidate(current, "support-triage", "ml-serving", None)
