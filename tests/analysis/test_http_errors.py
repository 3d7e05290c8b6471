"""The error-rate terms per router: which source each router reads, failures as decided (5xx,
429 where told apart, engine ``error``; not other 4xx nor ``abort``), no double counting (the
larger of the HTTP and the engine source), plain and grouped forms, rate and increase.

The PromQL is checked for what it means, and evaluated by the real ``promtool`` on series that
hold one engine error seen twice, a streamed engine error, a dead candidate and client errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from controlplane.analysis.http_errors import ErrorTerms, error_terms
from controlplane.analysis.metric_contract import UnknownEngineVersion

SEL = 'namespace="ml",canary="c",variant="nf4"'


@pytest.mark.parametrize(
    ("router", "source", "failed_series", "failed_matcher"),
    [
        ("gateway-api", "envoy", "envoy_cluster_upstream_rq{", 'envoy_response_code=~"5..|429"'),
        ("kserve", "envoy", "envoy_cluster_upstream_rq{", 'envoy_response_code=~"5..|429"'),
        ("istio", "istio", "istio_requests_total{", 'response_code=~"5..|429"'),
        ("llmisvc", "vllm-http", "http_requests_total{", 'status="5xx"'),
    ],
)
def test_http_source_per_router(
    router: str, source: str, failed_series: str, failed_matcher: str
) -> None:
    terms = error_terms(router, SEL, "5m")
    assert terms.sources == (source, "engine")
    for text in (terms.failed, terms.total):
        assert text.startswith("max(")
        assert f'"source", "{source}"' in text
        assert '"source", "engine"' in text
        assert text.count(SEL) == 2
        assert text.count("[5m]") == 2
    assert failed_series in terms.failed
    assert failed_matcher in terms.failed
    assert "vllm:request_success_total{" + SEL + ',finished_reason="error"}' in terms.failed
    assert "abort" not in terms.failed
    assert "finished_reason" not in terms.total


def test_istio_reads_the_destination_sidecar() -> None:
    terms = error_terms("istio", SEL, "5m")
    assert terms.failed.count('reporter="destination"') == 1
    assert terms.total.count('reporter="destination"') == 1


def test_vllm_http_counts_inference_handlers_only() -> None:
    terms = error_terms("llmisvc", SEL, "1m")
    handlers = 'handler=~"/v1/chat/completions|/v1/completions|/v1/responses"'
    assert handlers in terms.failed
    assert handlers in terms.total


@pytest.mark.parametrize("router", ["kserve-knative", "something-else"])
def test_engine_only_elsewhere(router: str) -> None:
    terms = error_terms(router, SEL, "5m")
    assert terms == ErrorTerms(
        failed=f'sum(rate(vllm:request_success_total{{{SEL},finished_reason="error"}}[5m]))',
        total=f"sum(rate(vllm:request_success_total{{{SEL}}}[5m]))",
        sources=("engine",),
    )


def test_grouped_increase_and_modifier() -> None:
    terms = error_terms(
        "gateway-api", 'namespace="ml"', "10m", ("canary", "variant"), fn="increase",
        modifier=" @ 1700000000.000",
    )  # fmt: skip
    assert terms.failed.startswith("max by (canary, variant) (")
    assert terms.failed.count("sum by (canary, variant) (increase(") == 2
    assert terms.total.count("[10m] @ 1700000000.000") == 2
    assert "rate(" not in terms.failed


def test_unknown_engine_version_is_refused() -> None:
    with pytest.raises(UnknownEngineVersion):
        error_terms("gateway-api", SEL, "5m", vllm_version="0.1.0")


# --------------------------------------------------------------------------- evaluated by promtool

# One minute of counters at 15 s steps (series notation: start+increment x steps).
_SERIES = """
load 15s
  # nf4: 20 requests a step through the gateway; 2 non-streamed engine errors (HTTP 500 and
  # finished error: the same requests), 1 streamed engine error (HTTP 200, finished error),
  # 1 client error (400, never reaching the engine) and 1 overloaded answer (429).
  envoy_cluster_upstream_rq{V,envoy_response_code="200"} 0+16x4
  envoy_cluster_upstream_rq{V,envoy_response_code="500"} 0+2x4
  envoy_cluster_upstream_rq{V,envoy_response_code="400"} 0+1x4
  envoy_cluster_upstream_rq{V,envoy_response_code="429"} 0+1x4
  vllm:request_success_total{V,finished_reason="stop"} 0+15x4
  vllm:request_success_total{V,finished_reason="error"} 0+3x4
  vllm:request_success_total{V,finished_reason="abort"} 0+0x4
  # bf16: dead: the gateway answers 503, the engine counts nothing.
  envoy_cluster_upstream_rq{S,envoy_response_code="503"} 0+10x4
"""


def _holds(expr: str, expected: float | None) -> bool:
    """Does ``expr`` evaluate to ``expected`` (None: no sample) at 1m over :data:`_SERIES`, in
    the real promtool's rule-test engine?"""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is needed (apt-get install -y prometheus)"
    series = _SERIES.replace("{V,", '{namespace="ml",canary="c",variant="nf4",')
    series = series.replace("{S,", '{namespace="ml",canary="c",variant="bf16",')
    lines = [ln.strip() for ln in series.splitlines()[2:]]
    inputs = [
        {"series": ln.rsplit(" ", 1)[0], "values": ln.rsplit(" ", 1)[1]}
        for ln in lines
        if ln and not ln.startswith("#")
    ]
    if expected is None:
        probe, samples = expr, []
    else:  # 1 when within 1e-9 of ``expected`` (rates are floats), 0 otherwise
        probe, samples = f"abs(({expr}) - {expected!r}) < bool 1e-9", [{"labels": "{}", "value": 1}]
    test = {
        "interval": "15s",
        "input_series": inputs,
        "promql_expr_test": [{"expr": probe, "eval_time": "1m", "exp_samples": samples}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test.yml").write_text(json.dumps({"rule_files": [], "tests": [test]}))
        done = subprocess.run(
            [promtool, "test", "rules", "test.yml"], cwd=root, capture_output=True, text=True
        )
    return done.returncode == 0


def _ratio_is(router: str, variant: str, expected: float | None) -> bool:
    terms = error_terms(router, f'namespace="ml",canary="c",variant="{variant}"', "1m")
    return _holds(f"({terms.failed}) / ({terms.total})", expected)


@pytest.mark.binary
def test_gateway_counts_each_failure_once() -> None:
    # 2 engine errors seen twice + 1 streamed one = 3 engine failures; the gateway sees 2 x 500
    # and 1 x 429: 3 failures of 20 requests, never 5 (the sum of both sources).
    assert _ratio_is("gateway-api", "nf4", 3 / 20)
    assert not _ratio_is("gateway-api", "nf4", 5 / 20)  # the check can fail


@pytest.mark.binary
def test_gateway_sees_a_dead_candidate_the_engine_cannot() -> None:
    assert _ratio_is("gateway-api", "bf16", 1.0)
    assert _ratio_is("kserve-knative", "bf16", None)  # the engine alone has no data at all


@pytest.mark.binary
def test_engine_only_misses_the_429() -> None:
    assert _ratio_is("kserve-knative", "nf4", 3 / 18)


@pytest.mark.parametrize("by", [(), ("canary", "variant")], ids=["plain", "grouped"])
def test_the_builder_takes_error_rate_from_here_for_a_router(by: tuple[str, ...]) -> None:
    from controlplane.analysis.promql import builtin_expr

    terms = error_terms("istio", SEL, "5m", by)
    assert builtin_expr("error-rate", SEL, "5m", by=by, router="istio") == (
        f"{terms.failed} / {terms.total}"
    )
