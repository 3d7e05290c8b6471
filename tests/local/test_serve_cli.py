"""``python -m controlplane.local.serve``: the simulated model server as a pod's main process.

The parser (pure): vLLM's defaults, served names, identity labels from flags and the environment,
every flag the product renders for KServe accepted, vLLM's choices and types refused with exit 2,
``--inject`` for one variant. Then the process itself (``binary``): it listens and answers the
real ``openai`` client, injected faults, ``never-ready``, ``crash-on-start``, SIGTERM, a busy port,
and the modules it imports (what its container image carries).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from support.extras import local_cpu

from controlplane.errors import ProfileError, UsageError
from controlplane.local import serve
from controlplane.local.inject import Faults, parse_fault
from controlplane.local.ports import free_port
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.vllm_args import kserve_args
from controlplane.spec.models import ModelSpec, VariantSpec

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30.0
CHAT = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}


# ----------------------------------------------------------------- the parser


def test_defaults_are_vllm_serves() -> None:
    config = serve.parse_args(["meta-llama/Llama-3.2-1B-Instruct"], {})
    assert config.model == "meta-llama/Llama-3.2-1B-Instruct"
    assert config.served_names == ("meta-llama/Llama-3.2-1B-Instruct",)
    assert (config.host, config.port) == ("0.0.0.0", 8000)
    assert config.engine == "simulated"
    assert config.faults == Faults()
    assert not config.crash_on_start
    assert not config.never_ready
    assert config.max_model_len is None
    assert config.seed == 0
    assert config.parameters == pytest.approx(1e9)  # the size in the name
    who = config.identity()
    assert (who.model, who.root) == (config.model, config.model)
    assert (who.namespace, who.canary, who.variant) == ("default", config.model, config.model)


def test_no_model_serves_vllms_default_and_model_is_accepted_as_a_flag() -> None:
    assert serve.parse_args([], {}).model == "Qwen/Qwen3-0.6B"
    assert serve.parse_args(["--model", "m"], {}).model == "m"
    assert serve.parse_args(["--model=m", "--port", "9000"], {}).port == 9000
    assert serve.parse_args(["m", "--model", "m"], {}).model == "m"
    with pytest.raises(UsageError, match="given twice"):
        serve.parse_args(["m", "--model", "other"], {})


def test_served_names_the_first_is_the_model_name() -> None:
    config = serve.parse_args(["/mnt/models", "--served-model-name", "demo-llm", "alias"], {})
    assert config.served_names == ("demo-llm", "alias")
    assert config.identity().model == "demo-llm"
    assert config.identity().root == "/mnt/models"
    assert serve.parse_args(["m", "--served_model_name=x"], {}).served_names == ("x",)


def test_kserve_huggingfaceserver_flags() -> None:
    config = serve.parse_args(["--model_name=demo-llm", "--model_dir=/mnt/models"], {})
    assert (config.model, config.served_names) == ("/mnt/models", ("demo-llm",))
    both = serve.parse_args(["m", "--model_name=a", "--served-model-name=b"], {})
    assert both.served_names == ("b",)
    assert serve.parse_args(["--model_id=org/x-7b"], {}).model == "org/x-7b"


def test_identity_labels_from_flags_then_environment() -> None:
    env = {
        "CONTROLPLANE_NAMESPACE": "team-a",
        "CONTROLPLANE_CANARY": "support",
        "CONTROLPLANE_VARIANT": "nf4",
    }
    who = serve.parse_args(["m"], env).identity()
    assert (who.namespace, who.canary, who.variant) == ("team-a", "support", "nf4")
    flags = ["m", "--namespace", "ns", "--canary", "c", "--variant", "v"]
    who = serve.parse_args(flags, env).identity()
    assert (who.namespace, who.canary, who.variant) == ("ns", "c", "v")
    # the downward API's POD_NAMESPACE; an empty value (a missing pod label) is unset
    env = {"POD_NAMESPACE": "pods", "CONTROLPLANE_CANARY": "", "CONTROLPLANE_VARIANT": ""}
    who = serve.parse_args(["m", "--served-model-name", "demo"], env).identity()
    assert (who.namespace, who.canary, who.variant) == ("pods", "demo", "demo")


@pytest.mark.parametrize("method", ["none", "fp8", "awq", "gptq", "bitsandbytes-nf4"])
def test_every_flag_the_product_renders_is_accepted(method: str) -> None:
    catalog = load_catalog()
    model = ModelSpec.model_validate(
        {"name": "demo-llm", "max_model_len": 4096, "vllm_version": "0.24.0"}
    )
    variant = VariantSpec.model_validate(
        {
            "name": "candidate",
            "storage_uri": "hf://meta-llama/Llama-3.2-1B-Instruct",
            "quantization": method,
            "gpu": "nvidia-a100-80gb",
            "gpu_count": 2,
            "gpu_memory_utilization": 0.85,
            "args": [
                "--enable-prefix-caching",
                "--dtype=bfloat16",
                "--kv-cache-dtype=fp8",
                "--max-num-seqs=64",
                "--max-num-batched-tokens=8k",
                "--enforce-eager",
                "--load-format=safetensors",
                "--seed=7",
            ],
        }
    )
    args = kserve_args(model, variant, catalog, chat_template="/etc/templates/chat.jinja")
    config = serve.parse_args(["/mnt/models", *args], {})
    assert config.served_names == ("demo-llm",)
    assert config.max_model_len == 4096
    assert config.gpu_count == 2
    assert config.gpu_memory_utilization == pytest.approx(0.85)
    assert config.seed == 7
    assert serve.catalog_method(config.quantization, catalog) == method
    engine = serve.make_engine(config, catalog)
    assert method in engine.description


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4096", 4096), ("4k", 4000), ("4K", 4096), ("25.6k", 25600), ("auto", None), ("-1", None)],
)
def test_max_model_len_as_vllm_reads_it(value: str, expected: int | None) -> None:
    assert serve.parse_args(["m", f"--max-model-len={value}"], {}).max_model_len == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["m", "--dtype", "int4"],
        ["m", "--kv-cache-dtype=fp7"],
        ["m", "--uvicorn-log-level", "loud"],
        ["m", "--engine", "vllm"],
        ["m", "--tensor-parallel-size", "two"],
        ["m", "--max-model-len", "2.5K"],
        ["m", "--port", "http"],
        ["m", "--no-such-flag"],
        ["m", "--max-model", "4096"],  # no abbreviations
        ["m", "--served-model-name"],
        ["m", "extra-positional"],
    ],
    ids=[
        "dtype",
        "kv-cache-dtype",
        "log-level",
        "engine",
        "tp-type",
        "binary-decimals",
        "port-type",
        "unknown",
        "abbreviation",
        "no-name",
        "two-models",
    ],
)
def test_what_argparse_refuses_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        serve.parse_args(argv, {})
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--quantization", "nonsense"], "Unknown quantization method: nonsense. Must be one of"),
        (["-q", "int3"], "Unknown quantization method: int3"),
        (["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization 1.5: must be in (0, 1]"),
        (["--tensor-parallel-size", "0"], "--tensor-parallel-size 0: must be at least 1"),
        (["--max-model-len", "0"], "--max-model-len 0"),
        (["--port", "70000"], "--port 70000"),
        (["--simulated-parameters", "0"], "--simulated-parameters 0"),
        (["--inject=cpu=3"], "--inject 'cpu=3': unknown kind 'cpu'"),
        (["--inject", "slow"], "--inject 'slow': unknown fault"),
        (["--inject=latency=5%"], "latency takes a delay"),
        (["--inject=errors=300ms"], "errors takes a share"),
        (["--inject=errors=150%"], "errors takes a share"),
        (["--inject=candidate.latency=+3ms"], "expected KIND=VALUE"),
        (["--simulated-gpu", "tpu"], "--simulated-gpu: unknown GPU 'tpu'"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["m", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("python -m controlplane.local.serve: error: ")
    assert message in err
    assert "Traceback" not in err


def test_inject_one_variant() -> None:
    config = serve.parse_args(
        [
            "m",
            "--inject=latency=+300ms",
            "--inject",
            "errors=5%",
            "--inject=engine-errors=0.02",
            "--inject=never-ready",
        ],
        {},
    )
    assert config.faults == Faults(latency_s=0.3, error_fraction=0.05, engine_error_fraction=0.02)
    assert config.never_ready
    assert not config.crash_on_start
    assert serve.parse_args(["m", "--inject=crash-on-start"], {}).crash_on_start
    later = serve.parse_args(["m", "--inject=errors=5%", "--inject=errors=1%"], {})
    assert later.faults.error_fraction == pytest.approx(0.01)


def test_parse_fault_is_the_grammar_of_up_without_the_role() -> None:
    kind, value = parse_fault("latency=+300ms")
    assert (kind, value) == ("latency", 0.3)
    kind, value = parse_fault(" engine-errors = 2% ")
    assert kind == "engine-errors"
    assert value == pytest.approx(0.02)
    with pytest.raises(UsageError, match="expected KIND=VALUE"):
        parse_fault("latency")


@pytest.mark.parametrize(
    ("flag", "method"),
    [
        (None, "none"),
        ("awq_marlin", "awq"),
        ("awq", "awq"),
        ("auto_gptq", "gptq"),
        ("fp8_per_tensor", "fp8"),
        ("bitsandbytes", "bitsandbytes-nf4"),
        ("compressed-tensors", "none"),
    ],
)
def test_quantization_flag_to_the_catalogue_method(flag: str | None, method: str) -> None:
    assert serve.catalog_method(flag, load_catalog()) == method


def test_parameters_from_the_model_name() -> None:
    assert serve.parameters_in_name("Qwen/Qwen3-0.6B") == pytest.approx(0.6e9)
    assert serve.parameters_in_name("org/llama-70b-instruct") == pytest.approx(70e9)
    assert serve.parameters_in_name("/mnt/models") is None
    assert serve.parameters_in_name("bf16-model") is None
    explicit = serve.parse_args(["org/x-70b", "--simulated-parameters", "2e8"], {})
    assert explicit.parameters == pytest.approx(2e8)


def test_crash_on_start_prints_vllms_oom_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(["m", "--inject=crash-on-start"]) == 1
    out = capsys.readouterr()
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate" in out.err
    assert "Engine core initialization failed" in out.err
    assert "running on" not in out.out
    assert "Traceback" not in out.err


def test_the_transformers_engine_refuses_a_gpu_method_as_a_failed_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """fp8 needs a GPU: the transformers engine cannot load it, which is vLLM's failed start
    (one line, exit 1), not a usage error; nothing listens. Decided before torch is imported."""
    argv = ["m", "--engine", "transformers", "--quantization", "fp8", "--port", "0"]
    assert serve.parse_args(argv, {}).engine == "transformers"
    assert serve.main(argv) == 1
    out = capsys.readouterr()
    assert out.err.startswith(f"{serve.PROG}: error: --engine transformers runs 'none'")
    assert "'fp8' needs a GPU" in out.err
    assert out.err.count("\n") == 1
    assert "running on" not in out.out


@pytest.mark.slow
@pytest.mark.binary  # torch runs ldconfig on import
@local_cpu("torch", "transformers", "bitsandbytes")
def test_the_transformers_engine_serves_the_quantized_tiny_model() -> None:
    """``--engine transformers --quantization bitsandbytes`` serves the tiny model quantized to
    NF4 for real: the engine header and info metric say ``transformers``, and greedy answers
    differ from the float32 model's on the same prompt (the quantization changed the weights)."""

    async def answer(*flags: str) -> tuple[str, str, bytes]:
        argv = ["m", "--engine", "transformers", "--host", "127.0.0.1", "--port", "0", *flags]
        server = await serve.start(serve.parse_args(argv, {}))
        try:
            body = {"model": "m", "prompt": "hello", "max_tokens": 12, "temperature": 0}
            engine, text = await asyncio.to_thread(_complete, server.url, body)
            metrics = (await asyncio.to_thread(_get, f"{server.url}/metrics"))[1]
            return engine, text, metrics
        finally:
            await server.stop()

    nf4 = asyncio.run(answer("--quantization", "bitsandbytes"))
    full = asyncio.run(answer())
    assert nf4[0] == full[0] == "transformers"
    assert b'kind="transformers"' in nf4[2]
    assert nf4[1] != full[1]


def test_the_server_binds_the_given_host_and_an_unready_one_answers_503() -> None:
    async def main() -> None:
        config = serve.parse_args(["m", "--host", "127.0.0.1", "--port", "0"], {})
        server = await serve.start(config)
        try:
            assert server.url.startswith("http://127.0.0.1:")
            assert server.port != 0
            assert (await asyncio.to_thread(_get, f"{server.url}/health"))[0] == 200
            server.ready = False
            health = await asyncio.to_thread(_get, f"{server.url}/health")
            models = await asyncio.to_thread(_get, f"{server.url}/v1/models")
            assert health[0] == 503
            assert models[0] == 200
        finally:
            await server.stop()

    asyncio.run(main())


def test_kserves_http_port_is_the_port() -> None:
    assert serve.parse_args(["--model_dir=/mnt/models", "--http_port=8080"], {}).port == 8080
    assert serve.parse_args(["m"], {}).port == 8000


def _model_dir(tmp_path: Path, **config: object) -> str:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    return str(tmp_path)


def test_a_local_model_takes_its_context_length_from_config_json(tmp_path: Path) -> None:
    path = _model_dir(tmp_path, max_position_embeddings=4096, n_positions=2048)
    loaded = serve.local_model(serve.parse_args([f"--model_dir={path}"], {}))
    assert not isinstance(loaded, str)
    assert loaded.max_model_len == 2048  # the smallest key wins, as vLLM derives it
    assert serve.derived_max_len({"max_position_embeddings": 4096}) == (
        4096,
        "max_position_embeddings",
    )
    assert serve.derived_max_len({"max_position_embeddings": 4096, "model_max_length": 8192}) == (
        8192,
        "model_max_length",
    )
    assert serve.derived_max_len({}) == (None, None)
    # a Hugging Face id is served as it is
    config = serve.parse_args(["org/x-7b", "--max-model-len=99999"], {})
    assert serve.local_model(config) == config


def test_a_max_model_len_above_the_config_is_vllms_refusal(tmp_path: Path) -> None:
    path = _model_dir(tmp_path, max_position_embeddings=4096)
    fits = serve.local_model(serve.parse_args([path, "--max-model-len=4096"], {}))
    assert not isinstance(fits, str)
    assert fits.max_model_len == 4096
    refused = serve.local_model(serve.parse_args([path, "--max-model-len=8192"], {}))
    assert refused == (
        "ValueError: User-specified max_model_len (8192) is greater than the derived "
        "max_model_len (max_position_embeddings=4096 or model_max_length=None in model's "
        "config.json). To allow overriding this maximum, set the env var "
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."
    )


@pytest.mark.parametrize("content", [None, "[1, 2]", "{not json"], ids=["none", "list", "broken"])
def test_a_model_dir_without_a_config_fails_to_load(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    assert serve.main([f"--model_dir={tmp_path}", "--port=0"]) == 1
    err = capsys.readouterr().err
    assert f"Invalid repository ID or local directory specified: '{tmp_path}'" in err
    assert "Traceback" not in err
    assert serve.main(["--model_dir=/nonexistent/models", "--port=0"]) == 1


# ----------------------------------------------------------------- the process


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _complete(url: str, body: dict[str, Any]) -> tuple[str, str]:
    """The engine header and the first choice's text of a completion."""
    request = urllib.request.Request(
        f"{url}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
        return reply.headers["x-controlplane-engine"], json.loads(reply.read())["choices"][0][
            "text"
        ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env.pop("POD_NAMESPACE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env | extra


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "controlplane.local.serve", *args]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """The process run to its end with ``args`` (for the ones that exit by themselves)."""
    return subprocess.run(
        _command(*args), env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


class Process:
    """``python -m controlplane.local.serve`` running; its stdout read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            _command(*args),
            env=env or _env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def url(self) -> str:
        """The address of the listening line (fails if the process ends or stays silent)."""
        deadline = time.monotonic() + TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.out.append(line)
            match = re.search(r"running on (http://\S+)", line)
            if match:
                return match.group(1)
        self.stop()
        pytest.fail(f"no listening line; stdout {self.out!r}, stderr {self.stderr()!r}")

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=TIMEOUT_S)
        finally:
            self._reader.join(timeout=TIMEOUT_S)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@contextmanager
def running(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[Process, str]]:
    process = Process("--host", "127.0.0.1", "--port", "0", *args, env=env)
    try:
        yield process, process.url()
    finally:
        process.stop()


@pytest.mark.binary
def test_the_process_listens_and_answers_the_openai_client() -> None:
    import openai

    env = _env(CONTROLPLANE_NAMESPACE="team-a", CONTROLPLANE_CANARY="support")
    args = ("org/tiny-0.1B", "--served-model-name", "demo-llm", "alias", "--variant", "nf4")
    with running(*args, "--max_model_len=4k", "--quantization=bitsandbytes", env=env) as (p, url):
        assert any("Simulated vLLM server running on http://127.0.0.1:" in line for line in p.out)
        status, body = _get(f"{url}/v1/models")
        assert status == 200
        (card,) = json.loads(body)["data"]
        assert (card["id"], card["root"], card["max_model_len"]) == (
            "demo-llm",
            "org/tiny-0.1B",
            4000,
        )
        assert _get(f"{url}/health")[0] == 200
        with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
            answer = client.chat.completions.create(
                model="demo-llm",
                messages=[{"role": "user", "content": "hello there"}],
                max_tokens=8,
            )
        assert answer.model == "demo-llm"
        assert answer.choices[0].message.content
        assert answer.usage is not None
        assert 1 <= answer.usage.completion_tokens <= 8
        metrics = _get(f"{url}/metrics")[1].decode()
        labels = 'engine="0",finished_reason="stop",model_name="demo-llm",namespace="team-a"'
        sample = f'vllm:request_success_total{{canary="support",{labels},variant="nf4"}} 1.0'
        assert sample in metrics
        assert p.stop() == 0


@pytest.mark.binary
def test_injected_errors_are_http_500() -> None:
    with running("m-0.1B", "--inject=errors=100%") as (_, url):
        status, body = _post(f"{url}/v1/chat/completions", CHAT)
        assert status == 500
        assert json.loads(body)["error"]["message"] == "injected error"
        assert 'http_requests_total{handler="/v1/chat/completions",method="POST",status="5xx"}' in (
            _get(f"{url}/metrics")[1].decode()
        )


@pytest.mark.binary
def test_never_ready_binds_the_port_but_refuses_connections() -> None:
    port = free_port()
    process = Process("m", "--host", "127.0.0.1", "--port", str(port), "--inject=never-ready")
    try:
        line = process.lines.get(timeout=TIMEOUT_S)
        deadline = time.monotonic() + TIMEOUT_S
        while line is not None and "Loading" not in line and time.monotonic() < deadline:
            line = process.lines.get(timeout=TIMEOUT_S)
        assert line is not None
        assert "never-ready injected" in line
        for _ in range(3):  # what a TCP readiness probe (KServe's default) sees
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            time.sleep(0.2)
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", port))  # the port is taken all the same
        process.proc.terminate()
        assert process.proc.wait(timeout=TIMEOUT_S) == 0
        assert "Traceback" not in process.stderr()
    finally:
        process.stop()


@pytest.mark.binary
def test_crash_on_start_exits_1_with_the_oom_message() -> None:
    done = _run("m", "--inject=crash-on-start")
    assert done.returncode == 1
    assert "torch.OutOfMemoryError: CUDA out of memory." in done.stderr
    assert "Traceback" not in done.stderr
    assert "running on" not in done.stdout


@pytest.mark.binary
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_a_signal_stops_it_cleanly_and_promptly(sig: signal.Signals) -> None:
    """A signal stops the server while a client holds an idle keep-alive connection to it (as
    a gateway's connection pool does): it logs its shutdown and exits 0 without waiting for
    that connection to close (aiohttp 3.14 keeps an idle one 3,630 s, ``keepalive_timeout``) or
    for the handlers' grace (``AppRunner``'s 60 s ``shutdown_timeout``). No seconds are
    asserted: :data:`TIMEOUT_S` (30 s) only bounds a hang, and either wait runs past it."""
    with running("m-0.1B") as (p, url):
        where = urllib.parse.urlsplit(url)
        idle = http.client.HTTPConnection(where.hostname or "", where.port, timeout=TIMEOUT_S)
        try:
            idle.request(
                "POST",
                "/v1/chat/completions",
                json.dumps(CHAT),
                {"Content-Type": "application/json"},
            )
            answer = idle.getresponse()
            answer.read()
            assert answer.status == 200
            assert not answer.will_close  # HTTP/1.1 keep-alive: the connection stays open
            p.proc.send_signal(sig)
            assert p.proc.wait(timeout=TIMEOUT_S) == 0
        finally:
            idle.close()
        assert "Traceback" not in p.stderr()
        assert _printed_to_the_end(p)[-1:] == ["INFO:     Shutting down"]


def _printed_to_the_end(p: Process) -> list[str]:
    """The lines ``p`` printed after its listening line, up to its end (it has exited)."""
    rest: list[str] = []
    while (line := p.lines.get(timeout=TIMEOUT_S)) is not None:
        rest.append(line.rstrip("\n"))
    return rest


@pytest.mark.binary
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("m", "--bogus-flag"), 2, "unrecognized arguments: --bogus-flag"),
        (("m", "--quantization", "nonsense"), 2, "Unknown quantization method: nonsense"),
        (("m", "--inject=cpu=3"), 2, "--inject 'cpu=3'"),
    ],
    ids=["unknown-flag", "quantization", "inject"],
)
def test_bad_input_exits_2_without_a_traceback(
    args: tuple[str, ...], code: int, message: str
) -> None:
    done = _run(*args)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.binary
def test_a_busy_port_is_one_line_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = _run("m", "--host", "127.0.0.1", "--port", port)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


_DRIVER = """
import sys
at_start = set(sys.modules)  # what the interpreter loaded before (site, .pth hooks)
import asyncio, json, re, threading, urllib.request
from controlplane.local import serve

async def main():
    stop, loop, failed = asyncio.Event(), asyncio.get_running_loop(), []

    def client(url):
        try:
            body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
            request = urllib.request.Request(
                url + "/v1/chat/completions", body.encode(), {"Content-Type": "application/json"}
            )
            for answer in (urllib.request.urlopen(request, timeout=30),
                           urllib.request.urlopen(url + "/metrics", timeout=30)):
                with answer:
                    answer.read()
        except Exception as exc:
            failed.append(repr(exc))
        finally:
            loop.call_soon_threadsafe(stop.set)

    def out(line):
        found = re.search(r"running on (http://\\S+)", line)
        if found:
            threading.Thread(target=client, args=(found.group(1),)).start()

    config = serve.parse_args(["m-0.1B", "--host", "127.0.0.1", "--port", "0"])
    assert await serve.run(config, stop, out) == 0
    assert not failed, failed

asyncio.run(main())
print(json.dumps(sorted(set(sys.modules) - at_start)))
"""
"""Serves one chat completion and one scrape through :func:`serve.run`, then lists the modules it
imported (those the interpreter had before it started are left out)."""

BANNED = {"numpy", "scipy", "kubernetes", "fastapi"}
IMAGE = ("aiohttp", "prometheus-client", "pydantic", "pyyaml")
"""What the container image carries, with their dependencies."""


def _closure(names: tuple[str, ...]) -> set[str]:
    """The distributions ``names`` need, themselves included (extras left out), normalised."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in needs:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


@pytest.mark.binary
def test_the_process_imports_only_what_the_image_carries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    tops = {name.split(".")[0] for name in modules}
    assert not tops & BANNED
    owners = packages_distributions()
    allowed = _closure(IMAGE)
    third_party = {
        top
        for top in tops - set(sys.stdlib_module_names) - {"controlplane", "__main__"}
        if top in owners
    }
    outside = {
        top: owners[top]
        for top in third_party
        if not {d.lower().replace("_", "-") for d in owners[top]} & allowed
    }
    assert not outside, f"imported from outside {IMAGE}: {outside}"
    assert {"aiohttp", "prometheus_client", "pydantic", "yaml"} <= third_party


def test_a_broken_install_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a container image without the packaged catalogue printed: a traceback, now one line
    (the first engine image copied the source tree, whose catalogue files are symlinks)."""

    def missing() -> None:
        raise ProfileError("packaged catalogue file gpus.yaml is missing")

    monkeypatch.setattr(serve, "load_catalog", missing)
    assert serve.main(["m", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err == f"{serve.PROG}: error: packaged catalogue file gpus.yaml is missing\n"
