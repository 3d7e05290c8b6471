"""Measured profiles paired with the canary: the expected change that ``canaryctl validate`` and
``render`` note next to the fit check, ``profile --canary`` prints, and ``kubectl canary get``
shows beside what the canary's checks observed (golden files, plain and ANSI)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import canary_dict
from support.cli import RunCli, check_golden
from support.cli_rollouts import NAME, NS, Clock, Rollout

from controlplane.cli.main import main
from controlplane.profiles.expected import (
    Observation,
    VariantRef,
    compare,
    pair,
    sources_line,
)
from controlplane.profiles.measured import Loaded
from controlplane.profiles.measured_models import MeasuredProfile
from harness.kube.fake import FakeKube

REPO = Path(__file__).resolve().parents[2]
LATER = 120.0

# The spec file of these tests: llama (8B parameters) bf16 against nf4 on an L4, two one-minute
# steps; no namespace, no analysis, no shadow, no budget.
CANARY = yaml.safe_dump(
    canary_dict(
        "m",
        metadata={"namespace": None},
        model={"name": "llama", "parameters": 8.0e9, "maxModelLen": 8192},
        stable={"name": "bf16", "storageUri": "hf://x/y", "gpu": "nvidia-l4"},
        candidate={
            "name": "nf4",
            "storageUri": "hf://x/y",
            "gpu": "nvidia-l4",
            "quantization": "bitsandbytes-nf4",
        },
        steps=[{"weight": 10, "duration": "1m"}, {"weight": 100, "duration": "1m"}],
        analysis=None,
        shadow=None,
        budget=None,
    )
)


def _point(concurrency: int, tps: float, ttft_p90: float, cost: float) -> dict[str, Any]:
    return {
        "concurrency": concurrency, "inputLen": 512, "outputLen": 128, "requests": 16,
        "outputTokens": 2048, "durationS": 2.0,
        "ttftMs": {"p50": ttft_p90 * 0.8, "p90": ttft_p90, "p99": ttft_p90 * 1.1},
        "e2eMs": {"p50": 900.0, "p90": 1000.0, "p99": 1100.0}, "outputTokensPerS": tps,
        "requestsPerS": 8.0, "costPerMillionOutputTokensUsd": cost,
    }  # fmt: skip


def _entry(model: str, quantization: str, gpu: str, points: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(
        {
            "model": model,
            "quantization": quantization,
            "gpu": gpu,
            "device": "NVIDIA L4",
            "mode": "endpoint",
            "measuredAt": "2026-01-01T00:00:00+00:00",
            "engine": {"name": "vllm", "version": "0.11.0"},
            "command": "canaryctl profile ...",
            "fixedOutput": "128 tokens",
            "points": points,
        }
    )


STABLE = [_point(1, 60.0, 50.0, 3.7), _point(8, 1020.0, 250.0, 0.22)]
CANDIDATE = [_point(1, 55.0, 55.0, 4.0), _point(8, 1410.0, 220.0, 0.16)]


def _catalog(tmp_path: Path, model: str, gpu: str, *, candidate: bool = True) -> Path:
    base = tmp_path / "profiles"
    (base / "measured").mkdir(parents=True)
    for name in ("gpus.yaml", "quantization.yaml"):
        shutil.copy(REPO / "profiles" / name, base / name)
    (base / "measured" / "bf16.yaml").write_text(_entry(model, "none", gpu, STABLE))
    if candidate:
        (base / "measured" / "nf4.yaml").write_text(
            _entry(model, "bitsandbytes-nf4", gpu, CANDIDATE)
        )
    return base


# --------------------------------------------------------------------------- the pure pairing


def _loaded(model: str, quantization: str, points: list[dict[str, Any]]) -> Loaded:
    entry = MeasuredProfile.model_validate(yaml.safe_load(_entry(model, quantization, "g", points)))
    return Loaded(entry, f"{quantization}.yaml")


def test_headline_is_the_largest_common_concurrency_with_absolute_tokens() -> None:
    entries = [_loaded("m", "none", STABLE), _loaded("m", "bitsandbytes-nf4", CANDIDATE)]
    pairing = pair(entries, "m", VariantRef("bf16", "none", "g"), VariantRef("nf4", "awq", "g"))
    assert not pairing.measured  # the candidate's quantization has no entry
    assert pairing.line() is None
    pairing = pair(
        entries, "m", VariantRef("bf16", "none", "g"), VariantRef("nf4", "bitsandbytes-nf4", "g")
    )
    assert [c.concurrency for c in pairing.changes] == [1, 8]
    assert pairing.line() == (
        "expected from measured profiles: tokens/s +38% (bf16 1,020 -> nf4 1,410 at concurrency "
        "8), TTFT p90 -12%, e2e p90 +0%, $/1M output tokens -27% "
        "[none.yaml, bitsandbytes-nf4.yaml]"
    )


def test_an_in_process_entry_is_named_as_such_in_both_lines() -> None:
    entries = [_loaded("m", "none", STABLE), _loaded("m", "bitsandbytes-nf4", CANDIDATE)]
    entries[1] = Loaded(entries[1].entry.model_copy(update={"mode": "in-process"}), "nf4.yaml")
    pairing = pair(
        entries, "m", VariantRef("bf16", "none", "g"), VariantRef("nf4", "bitsandbytes-nf4", "g")
    )
    assert pairing.in_process
    line = pairing.line()
    assert line is not None
    assert line.startswith(
        "expected from measured profiles (in-process, not the served engine): tokens/s +38%"
    )
    assert sources_line(pairing) == (
        "expected: measured profiles in-process, not the served engine, at concurrency 8 "
        "[none.yaml, nf4.yaml]"
    )


def test_compare_divides_a_rate_by_the_traffic_split_and_names_what_is_missing() -> None:
    entries = [_loaded("m", "none", STABLE), _loaded("m", "q", CANDIDATE)]
    pairing = pair(entries, "m", VariantRef("a", "none", "g"), VariantRef("b", "q", "g"))
    seen = [
        Observation("tps", "tokens-per-second", None, 120.0, 1000.0),
        Observation("lat", "e2e-latency", 0.95, 0.9, 1.0),
    ]
    rows = {r.quantity: r for r in compare(pairing, seen, (0.1, "w"))}  # 1/11 of the traffic
    assert rows["tokens/s"].observed == pytest.approx(1.2)
    assert "per share of traffic" in rows["tokens/s"].how
    assert rows["e2e p90"].observed == pytest.approx(0.9)
    assert rows["e2e p90"].how == "lat (e2e-latency) p95"
    assert rows["TTFT p90"].observed is None
    assert rows["TTFT p90"].how == "no ttft check"
    assert rows["$/1M output tokens"].how == "not measured by the canary"
    unknown = {r.quantity: r for r in compare(pairing, seen, None)}
    assert unknown["tokens/s"].observed is None
    assert "traffic split unknown" in unknown["tokens/s"].how


# --------------------------------------------------------------------------- validate / render


def test_validate_notes_fit_and_expected_change_when_both_variants_are_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    base = _catalog(tmp_path, "llama", "nvidia-l4")
    assert main(["validate", "--profiles", str(base), str(canary)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # notes are not problems
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"{canary}: m: spec.stable.gpu: fits: needs ")
    assert lines[1].startswith(f"{canary}: m: spec.candidate.gpu: fits: needs ")
    assert lines[2] == (
        f"{canary}: m: expected from measured profiles: tokens/s +38% (bf16 1,020 -> nf4 1,410 "
        "at concurrency 8), TTFT p90 -12%, e2e p90 +0%, $/1M output tokens -27% "
        f"[{base / 'measured' / 'bf16.yaml'}, {base / 'measured' / 'nf4.yaml'}]"
    )
    # then the capacity plan the spec gets by default, sized by the measured profiles
    assert lines[3].startswith(f"{canary}: capacity: one replica serves 8.0 req/s stable (measured")
    assert lines[-1] == "1 file(s) valid"
    assert main(["validate", "-o", "json", "--profiles", str(base), str(canary)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "[]"  # the JSON contract is unchanged
    assert "expected from measured profiles: tokens/s +38%" in captured.err


def test_validate_says_nothing_more_when_one_variant_is_not_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    base = _catalog(tmp_path, "llama", "nvidia-l4", candidate=False)
    assert main(["validate", "--profiles", str(base), str(canary)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [x for x in lines if ": capacity: " not in x] == ["1 file(s) valid"]


def test_render_notes_on_stderr_and_keeps_stdout_applicable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    base = _catalog(tmp_path, "llama", "nvidia-l4")
    assert main(["render", "--catalog", str(base), str(canary)]) == 0
    captured = capsys.readouterr()
    assert list(yaml.safe_load_all(captured.out))  # still a stream of objects only
    assert "expected from measured profiles" not in captured.out
    assert f"{canary}: m: spec.candidate.gpu: fits: needs " in captured.err
    assert "m: expected from measured profiles: tokens/s +38% (bf16 1,020 -> nf4" in captured.err


def test_profile_canary_prints_the_same_headline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    base = _catalog(tmp_path, "llama", "nvidia-l4")
    assert main(["profile", "--canary", str(canary), "--profiles", str(base)]) == 0
    out = capsys.readouterr().out
    assert "expected candidate vs stable at concurrency 8: tokens/s +38%" in out
    assert "  expected from measured profiles: tokens/s +38% (bf16 1,020 -> nf4 1,410" in out


# --------------------------------------------------------------------------- kubectl canary get


TPS_ANALYSIS = {
    "interval": "1m",
    "window": "5m",
    "metrics": [
        {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
        {"name": "errors", "builtin": "error-rate"},
        {"name": "tps", "builtin": "tokens-per-second"},
    ],
}
TPS_STEPS = [
    {
        "weight": 5,
        "duration": "7d",
        "rollbackOn": [
            {"metric": "latency", "above": "300ms"},
            {"metric": "tps", "below": "1"},
        ],
    },
    {"weight": 100},
]


def _in_step_one(kube: FakeKube, clock: Clock, **changes: Any) -> Rollout:
    rollout = Rollout(kube, clock, **changes).start()
    rollout.intent("promote")  # shadow -> step 1 at weight 5%
    rollout.tick(
        120,
        {
            "latency": ("pass", 0.198, 0.198, 0.2),
            "errors": ("pass", 0.0004, 0.0004, 0.0003),
            "tps": ("pass", 70.0, 70.0, 1000.0),
        },
    )
    clock.now += LATER
    return rollout


def test_get_shows_expected_beside_observed(
    tmp_path: Path, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    _in_step_one(kube, clock, analysis=TPS_ANALYSIS, steps=TPS_STEPS)
    base = _catalog(tmp_path, "support-triage-llm", "nvidia-l40s")
    result = run_cli("get", NAME, "-n", NS, "--profiles", str(base))
    assert result.code == 0, result.err
    check_golden("get-expected.txt", result.out)
    # 70 / 1000 tok/s at 5 : 95 of the traffic is 1.33 per share: +33% against +38% expected
    row = next(line.split() for line in result.out.splitlines() if line.startswith("tokens/s"))
    assert row[:3] == ["tokens/s", "+38%", "+33%"]
    colour = run_cli("get", NAME, "-n", NS, "--profiles", str(base), terminal=True)
    check_golden("get-expected.ansi", colour.out)


def test_get_says_when_the_canary_measures_no_tokens_per_second(
    tmp_path: Path, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    _in_step_one(kube, clock)
    base = _catalog(tmp_path, "support-triage-llm", "nvidia-l40s")
    result = run_cli("get", NAME, "-n", NS, "--profiles", str(base))
    assert result.code == 0, result.err
    check_golden("get-expected-no-tps.txt", result.out)
    assert "no tokens-per-second check" in result.out


def test_get_without_both_entries_shows_no_expectation(
    tmp_path: Path, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    _in_step_one(kube, clock, analysis=TPS_ANALYSIS, steps=TPS_STEPS)
    base = _catalog(tmp_path, "support-triage-llm", "nvidia-l40s", candidate=False)
    with_one = run_cli("get", NAME, "-n", NS, "--profiles", str(base))
    packaged = run_cli("get", NAME, "-n", NS)
    assert with_one.code == packaged.code == 0
    assert "Expected vs observed" not in with_one.out
    assert with_one.out == packaged.out
    check_golden("get-expected-none.txt", packaged.out)


def test_get_reports_a_malformed_entry_as_file_and_line(
    tmp_path: Path, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    _in_step_one(kube, clock)
    base = _catalog(tmp_path, "support-triage-llm", "nvidia-l40s")
    (base / "measured" / "bad.yaml").write_text("kind: MeasuredProfile\nmodel: [\n")
    result = run_cli("get", NAME, "-n", NS, "--profiles", str(base))
    assert result.code != 0
    assert "bad.yaml:" in result.err


def test_the_api_gives_the_same_expected_change_as_get(
    tmp_path: Path, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    """The dashboard's "expected against observed" (issue 38) is the API's ``expected``: the
    rows ``get`` prints, computed by the same code, with where the expectation comes from."""
    from fastapi.testclient import TestClient

    from controlplane.api.app import create_app
    from controlplane.api.auth import Authenticator
    from controlplane.api.config import ApiConfig
    from controlplane.profiles.catalog import load_catalog
    from controlplane.profiles.measured import measured_for

    _in_step_one(kube, clock, analysis=TPS_ANALYSIS, steps=TPS_STEPS)
    base = _catalog(tmp_path, "support-triage-llm", "nvidia-l40s")
    shown = run_cli("get", NAME, "-n", NS, "--profiles", str(base)).out
    measured = tuple(measured_for(load_catalog(base)))
    config = ApiConfig(kube=kube, auth=Authenticator(static_token="t"), measured=measured)
    with TestClient(create_app(config)) as api:
        got = api.get(
            f"/api/v1/namespaces/{NS}/canaries/{NAME}", headers={"Authorization": "Bearer t"}
        ).json()
        bare = ApiConfig(kube=kube, auth=Authenticator(static_token="t"), measured=())
        with TestClient(create_app(bare)) as none:
            unpaired = none.get(
                f"/api/v1/namespaces/{NS}/canaries/{NAME}",
                headers={"Authorization": "Bearer t"},
            ).json()
    rows = {r["quantity"]: r for r in got["expected"]["rows"]}
    tps = rows["tokens/s"]
    assert (round(tps["expected"] - 1, 2), round(tps["observed"] - 1, 2)) == (0.38, 0.33)
    assert rows["$/1M output tokens"]["observed"] is None  # the canary never observes cost
    for quantity, row in rows.items():  # each row is one of get's, in the same words
        assert quantity in shown
        assert row["how"].split(" (")[0] in shown
    assert "bf16.yaml" in got["expected"]["sources"]
    assert unpaired["expected"] is None
