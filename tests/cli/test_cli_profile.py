"""``canaryctl profile``: against the local stack's simulated engine (an OpenAI-compatible server
on 127.0.0.1, in a thread) and in-process on the CPU with the tiny shape; the written entry is
read back and preferred by validate's fit check."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.canaries import canary_dict
from support.extras import local_cpu

from controlplane.cli.main import main
from controlplane.local.engines import make_engine
from controlplane.local.server import Identity, ModelServer
from controlplane.profiles.catalog import load_catalog
from controlplane.profiles.measured import load
from controlplane.spec.models import ModelSpec, VariantSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[str]:
    """The local stack's model server with the simulated engine (an L4 running an 8B)."""
    catalog = load_catalog()
    model = ModelSpec(name="llama", parameters=1e9)
    variant = VariantSpec(name="bf16", storage_uri="hf://x/y", gpu="nvidia-h200")
    engine = make_engine("simulated", model, variant, catalog, seed=1)
    srv = ModelServer(Identity("llama", "ns", "c", "bf16"), engine, seed=1)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield srv.url
    asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_endpoint_profile_of_the_local_stack(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "measured" / "llama-bf16.yaml"
    argv = [
        "profile", "--endpoint", server, "--model", "llama", "--gpu", "nvidia-h200",
        "--input-len", "16", "--output-len", "8", "--concurrency", "1,4", "--requests", "4",
        "--ttft-target", "10s", "--write", str(out), "-o", "json",
    ]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert "concurrency 4" in captured.err  # progress
    assert data["mode"] == "endpoint"
    assert data["engine"]["name"] == "controlplane-local (simulated engine)"
    assert "honoured" in data["fixedOutput"]
    assert "not honoured" not in data["fixedOutput"]
    assert [p["concurrency"] for p in data["points"]] == [1, 4]
    for point in data["points"]:
        assert point["requests"] == 4
        assert point["outputTokens"] == 4 * 8  # ignore_eos: exactly max_tokens each
        assert 0 < point["ttftMs"]["p50"] <= point["e2eMs"]["p50"]
        price = 7.91  # nvidia-h200 in profiles/gpus.yaml
        expected = price / 3600 / point["outputTokensPerS"] * 1e6
        assert point["costPerMillionOutputTokensUsd"] == pytest.approx(expected, rel=1e-3)
        assert point["kvCacheUsageMax"] is not None  # read from the server's /metrics
    assert data["requestsPerSAtTarget"] == max(p["requestsPerS"] for p in data["points"])
    entry = load(out)
    assert entry.gpu == "nvidia-h200"
    assert entry.points[1].concurrency == 4


def test_endpoint_table_and_plot(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "profile", "--endpoint", server, "--model", "llama", "--input-len", "8",
        "--output-len", "4", "--concurrency", "2", "--requests", "2", "--plot",
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "TTFT MS p50/p90/p99" in text
    assert "OUT TOK/S" in text
    assert "output tokens/s:" in text
    assert "c=2" in text


def test_wrong_model_is_a_clear_error(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--endpoint", server, "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert "does not serve model 'nope'" in err
    assert "llama" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--in-process"], "--in-process needs --arch"),
        (["--in-process", "--arch", "gpt-9"], "unknown architecture 'gpt-9'"),
        (["--in-process", "--arch", "tiny", "--concurrency", "0"], "--concurrency"),
        (["--in-process", "--arch", "tiny", "--quantization", "awq"], "cannot run in-process"),
        (["--endpoint", "http://127.0.0.1:9"], "--endpoint needs --model"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.binary  # importing torch runs ldconfig
@local_cpu()
@pytest.mark.parametrize("quantization", ["none", "bitsandbytes-nf4", "bitsandbytes-int8", "fp8"])
def test_in_process_tiny_on_cpu_measures_what_fit_predicts(
    quantization: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.yaml"
    argv = [
        "profile", "--in-process", "--arch", "tiny", "--quantization", quantization,
        "--input-len", "8", "--output-len", "3", "--concurrency", "1,2", "--write", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "weights:" in text
    assert "measured" in text
    entry = load(out)
    assert entry.memory is not None
    assert entry.memory.predicted_weights_gib is not None
    # fit.py keeps embeddings and lm_head in bf16: within the quantization states' few percent
    ratio = entry.memory.weights_gib / entry.memory.predicted_weights_gib
    assert ratio == pytest.approx(1.0, abs=0.08), ratio
    if quantization == "fp8":  # torchao's weights are wrappers: their bytes are inner tensors
        assert "fp8 here: FP8 e4m3 weights only, per-row scales, bf16 compute" in text
        assert "torchao" in entry.engine.libraries
    for point in entry.points:
        assert point.output_tokens == point.concurrency * 3
        assert point.itl_ms is not None
    # the KV cache the batch filled is counted in the peak: 2 layers x K,V x 2 kv heads x 32
    kv_bytes = 2 * 2 * 2 * 32 * 2 * 2 * (8 + 2)  # x bf16 x batch 2 x tokens
    assert entry.points[1].peak_memory_gib == pytest.approx(
        entry.points[0].peak_memory_gib + kv_bytes / 2 / 2**30, rel=1e-3
    )


def _catalog_dir(tmp_path: Path) -> Path:
    base = tmp_path / "profiles"
    base.mkdir()
    shutil.copy(REPO / "profiles" / "gpus.yaml", base / "gpus.yaml")
    shutil.copy(REPO / "profiles" / "quantization.yaml", base / "quantization.yaml")
    return base


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


def _entry(quantization: str, weights_gib: float, tps: float, cost: float) -> dict[str, object]:
    point = {
        "concurrency": 1, "inputLen": 8, "outputLen": 4, "requests": 2, "outputTokens": 8,
        "durationS": 1.0, "ttftMs": {"p50": 10.0, "p90": 12.0, "p99": 13.0},
        "e2eMs": {"p50": 40.0, "p90": 45.0, "p99": 50.0}, "outputTokensPerS": tps,
        "requestsPerS": 2.0, "costPerMillionOutputTokensUsd": cost,
    }  # fmt: skip
    return {
        "model": "llama", "quantization": quantization, "gpu": "nvidia-l4", "device": "endpoint",
        "mode": "in-process", "measuredAt": "2025-01-01T00:00:00+00:00",
        "engine": {"name": "transformers"}, "command": "canaryctl profile ...",
        "fixedOutput": "4 tokens", "points": [point],
        "memory": {"weightsGib": weights_gib, "how": "test"},
    }  # fmt: skip


def test_validate_prefers_the_measured_entry_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _catalog_dir(tmp_path)
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    assert main(["validate", "--profiles", str(base), str(canary)]) == 0  # cited: it fits
    capsys.readouterr()
    (base / "measured").mkdir()
    (base / "measured" / "nf4.yaml").write_text(
        yaml.safe_dump(_entry("bitsandbytes-nf4", 19.5, 50.0, 4.0))
    )
    assert main(["validate", "--profiles", str(base), str(canary)]) == 2
    out = capsys.readouterr().out
    assert "spec.candidate.gpu: the model does not fit" in out
    assert "weights 19.5 [measured: " in out
    assert "nf4.yaml" in out


def test_compare_gives_the_expected_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _catalog_dir(tmp_path)
    (base / "measured").mkdir()
    (base / "measured" / "bf16.yaml").write_text(yaml.safe_dump(_entry("none", 14.9, 40.0, 5.6)))
    (base / "measured" / "nf4.yaml").write_text(
        yaml.safe_dump(_entry("bitsandbytes-nf4", 5.5, 30.0, 7.0))
    )
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    assert main(["profile", "--canary", str(canary), "--profiles", str(base)]) == 0
    out = capsys.readouterr().out
    assert "expected candidate vs stable at concurrency 1: tokens/s -25%" in out
    assert "$/1M output tokens +25%" in out
    assert "candidate: fit: fits: needs" in out
    assert "[measured: " in out


def test_malformed_entry_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _catalog_dir(tmp_path)
    (base / "measured").mkdir()
    bad = _entry("none", 14.9, 40.0, 5.6) | {"colour": "red"}
    (base / "measured" / "bad.yaml").write_text(yaml.safe_dump(bad))
    canary = tmp_path / "canary.yml"
    canary.write_text(CANARY)
    assert main(["profile", "--canary", str(canary), "--profiles", str(base)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml:" in err
    assert "colour: unknown field" in err
