"""GuideLLM, the real benchmark client, run against the local model server.

The simulated engine is served the way ``canaryctl serve`` serves it (:func:`serve.parse_args`,
:func:`serve.start`) on loopback, in an event loop of its own thread; the installed
``guidellm run`` (GuideLLM 0.8.1, the ``local-cpu`` extra: it needs torch) benchmarks it as it
would a ``vllm serve``, and its JSON report is read back. Nothing is downloaded: the data set is
GuideLLM's synthetic text (Faker sentences cut to length), the tokenizer that cuts them is a
byte-level one built here with the ``tokenizers`` library, and the Hugging Face libraries run
offline. Each run starts GuideLLM's own worker processes (and imports torch): ``binary`` and
``slow``. Skipped, with the reason, where GuideLLM is not installed (``make test-fast EXTRAS=``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.extras import missing, skip_reason

from controlplane.local import serve
from controlplane.local.server import ModelServer

# Found, not imported: importing guidellm installs uvloop's event loop policy for the whole
# process, and uvloop starts programs without subprocess.Popen, past the tier guard
# (tests/support/tiers.py) of every later test in the worker. It runs as its own program.
# GuideLLM is in the local-cpu extra (it needs torch); its transformers brings tokenizers.
if absent := missing(("guidellm", "tokenizers")):
    pytest.skip(skip_reason(tuple(absent)), allow_module_level=True)
import tokenizers

GUIDELLM = Path(sys.executable).with_name("guidellm")
MODEL = "demo-llm"
PROMPT_TOKENS = 64
RUN_TIMEOUT_S = 240


class Served:
    """``canaryctl serve``'s simulated engine on loopback, in its own event loop and thread."""

    def __init__(self, *argv: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = serve.parse_args([*argv, "--host", "127.0.0.1", "--port", "0"], {})
        self.server: ModelServer = self._call(serve.start(config))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the server's registry, summed over the labels not given."""
        return sum(
            sample.value
            for family in self.server.metrics.registry.collect()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def stop(self) -> None:
        self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    running = Served("org/tiny-0.1B", "--served-model-name", MODEL, "--max-model-len", "4096")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face tokenizer folder, made here: byte-level BPE with no merges (one token per
    byte, GPT-2's byte alphabet), what ``AutoTokenizer.from_pretrained`` loads from disk."""
    folder = tmp_path_factory.mktemp("tokenizer")
    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate([*alphabet, "<|endoftext|>"])}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def guidellm_run(
    tmp_path: Path, tokenizer: Path, *, backend: str, profile: str, requests: int, output: int
) -> dict[str, Any]:
    """``guidellm run`` to its end; its one benchmark from the JSON report."""
    report = tmp_path / "report.json"
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "GUIDELLM__MAX_WORKER_PROCESSES": "1",  # one request process: two cores
    }
    argv = [
        str(GUIDELLM),
        "run",
        f"--backend=kind=openai_http,{backend}",
        f"--profile={profile}",
        f"--constraint=kind=max_requests,count={requests}",
        f"--tokenizer=kind=huggingface_auto,model={tokenizer}",
        f"--data=kind=synthetic_text,prompt_tokens={PROMPT_TOKENS},output_tokens={output}",
        f"--output=kind=json,path={report}",
        "--disable-console",
    ]
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"guidellm exited {done.returncode}:\n{done.stdout}{done.stderr}"
    (benchmark,) = json.loads(report.read_text())["benchmarks"]
    assert isinstance(benchmark, dict)
    return benchmark


def check_report(benchmark: dict[str, Any], served: Served, requests: int, output: int) -> None:
    """Every request succeeded, each with the output length asked for, as the server counted."""
    outcome = benchmark["requests"]
    assert (len(outcome["errored"]), len(outcome["incomplete"])) == (0, 0)
    successful = outcome["successful"]
    assert len(successful) == requests
    # GuideLLM reads the token counts from the answers' usage (prefer_response_metrics)
    assert [request["output_tokens"] for request in successful] == [output] * requests
    assert all(request["output_metrics"]["text_tokens"] == output for request in successful)
    assert all(request["output"] for request in successful)
    totals = benchmark["metrics"]["request_totals"]
    assert (totals["successful"], totals["errored"], totals["incomplete"]) == (requests, 0, 0)
    # ignore_eos: every choice ran to its max tokens
    assert served.metric("vllm:request_success_total", finished_reason="length") == requests
    assert served.metric("vllm:generation_tokens_total") == requests * output
    prompts = sum(request["prompt_tokens"] for request in successful)
    assert prompts > 0
    assert served.metric("vllm:prompt_tokens_total") == prompts
    assert served.metric("http_requests_total", status="4xx") == 0


@pytest.mark.binary
@pytest.mark.slow
@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_guidellms_default_streamed_chat_at_a_constant_rate(
    served: Served, tokenizer_dir: Path, tmp_path: Path
) -> None:
    """The default request (streamed chat completions with continuous usage, the one that was a
    400), at a constant 20 requests/s; no model named, so GuideLLM takes it from /v1/models."""
    requests, output = 30, 16
    benchmark = guidellm_run(
        tmp_path,
        tokenizer_dir,
        backend=f"target={served.server.url}",
        profile="kind=constant,rate=20",
        requests=requests,
        output=output,
    )
    assert benchmark["config"]["backend"]["model"] == MODEL
    assert benchmark["config"]["strategy"]["type_"] == "constant"
    body = json.loads(benchmark["requests"]["successful"][0]["request_args"])["body"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert (body["max_completion_tokens"], body["ignore_eos"]) == (output, True)
    assert body["messages"][0]["content"][0]["type"] == "text"
    check_report(benchmark, served, requests, output)


@pytest.mark.binary
@pytest.mark.slow
@pytest.mark.timeout(2 * RUN_TIMEOUT_S)
def test_guidellms_text_completions_synchronous(
    served: Served, tokenizer_dir: Path, tmp_path: Path
) -> None:
    """``request_format=/v1/completions`` (streamed, one string prompt), one request at a time."""
    requests, output = 20, 24
    benchmark = guidellm_run(
        tmp_path,
        tokenizer_dir,
        backend=f"target={served.server.url},model={MODEL},request_format=/v1/completions",
        profile="kind=synchronous",
        requests=requests,
        output=output,
    )
    assert benchmark["config"]["strategy"]["type_"] == "synchronous"
    body = json.loads(benchmark["requests"]["successful"][0]["request_args"])["body"]
    assert (body["stream"], body["max_tokens"], body["ignore_eos"]) == (True, output, True)
    assert isinstance(body["prompt"], str)
    check_report(benchmark, served, requests, output)
