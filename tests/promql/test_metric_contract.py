"""The vLLM metric contract: version resolution and the shape of its data."""

from __future__ import annotations

import pytest

from controlplane.promql.contract import (
    CONTRACTS,
    DEFAULT_VLLM_VERSION,
    LATENCY_BUILTINS,
    UnknownEngineVersion,
    contract_for,
    error_terms,
    version_key,
)
from controlplane.spec.models import Builtin


def test_default_is_the_kserve_pinned_version() -> None:
    assert contract_for() is contract_for(DEFAULT_VLLM_VERSION)
    assert contract_for().read_from == DEFAULT_VLLM_VERSION


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("0.24.0", "0.24"),
        ("v0.24.1", "0.24"),
        ("0.27.1", "0.27"),
        ("0.33", "0.33"),
        ("0.33.0rc1", "0.33"),
    ],
)
def test_versions_match_on_major_minor(given: str, key: str) -> None:
    assert version_key(given) == key
    assert contract_for(given).version == key


@pytest.mark.parametrize("given", ["0.28.0", "1.0", "latest", ""])
def test_unread_or_malformed_versions_are_refused(given: str) -> None:
    with pytest.raises(UnknownEngineVersion) as err:
        contract_for(given)
    assert repr(given) in str(err.value) or "0.24, 0.27, 0.32, 0.33" in str(err.value)


@pytest.mark.parametrize("version", sorted(CONTRACTS))
def test_every_builtin_is_in_every_contract(version: str) -> None:
    contract = CONTRACTS[version]
    assert set(contract.metrics) == set(Builtin.__args__)  # type: ignore[attr-defined]
    for builtin in LATENCY_BUILTINS:
        buckets = contract.buckets(builtin)
        assert list(buckets) == sorted(set(buckets))
        assert buckets[0] > 0
        assert contract.bucket_series()[builtin].endswith("_seconds_bucket")
    with pytest.raises(KeyError):
        contract.buckets("error-rate")


def test_error_terms_select_failed_reasons_among_all() -> None:
    contract = contract_for()
    terms = error_terms(contract, 'canary="a"', "5m", fn="increase")
    assert set(contract.error_reasons) <= set(contract.finished_reasons)
    assert terms.total == 'increase(vllm:request_success_total{canary="a"}[5m])'
    assert terms.failed == (
        'increase(vllm:request_success_total{canary="a",finished_reason=~"error"}[5m])'
    )
    # abort is a finish reason vLLM has, but not a failure (the one rule, see http_errors)
    assert "abort" in contract.finished_reasons
    assert "abort" not in contract.error_reasons
