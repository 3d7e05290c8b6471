"""``python -m controlplane.local.serve MODEL``: one simulated variant as the main process of a pod.

Owns the command line and life of a model server run on its own, shaped like ``vllm serve`` (vLLM
0.24.0's flags, refusals and exit codes) so an image can stand in for vLLM on a node without a
GPU. Imports stay light, as the image carries little (``tests/local/test_serve_cli.py`` checks).
See docs/local.md, "One model server as a pod's process".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controlplane.errors import ControlPlaneError, ProfileError, UsageError
from controlplane.local.engines.base import Engine, EngineError
from controlplane.local.engines.simulated import SimulatedEngine, speed_for
from controlplane.local.inject import KINDS, Faults, parse_fault, with_fault
from controlplane.local.server import Identity, ModelServer
from controlplane.profiles.catalog import Catalog, GpuProfile, load_catalog
from controlplane.serving.chat_template import default_system_prompt
from controlplane.spec.models import ModelArchitecture, ModelSpec, VariantSpec

PROG = "python -m controlplane.local.serve"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8000
"""vLLM's ``--port`` default (``FrontendArgs.port``)."""
DEFAULT_MODEL = "Qwen/Qwen3-0.6B"
"""What ``vllm serve`` serves when given no model (vLLM 0.24.0 ``config/model.py``
``ModelConfig.model``)."""
DEFAULT_GPU = "nvidia-l4"
DEFAULT_NAMESPACE = "default"
ENGINES = ("simulated", "transformers")
PROCESS_FAULTS = ("crash-on-start", "never-ready")
ENV_NAMESPACE = ("CONTROLPLANE_NAMESPACE", "POD_NAMESPACE")
ENV_CANARY = ("CONTROLPLANE_CANARY",)
ENV_VARIANT = ("CONTROLPLANE_VARIANT",)
MAX_SPEC_LEN = 10_000_000
MAX_SPEC_GPUS = 64
MAX_PARAMETERS = 1e14
"""What a spec's ``maxModelLen`` / ``gpuCount`` / ``parameters`` may be: the speed model is
built from one."""

# vLLM 0.24.0's values, each read in its wheel (paths inside the ``vllm`` package).
QUANTIZATION_METHODS = (
    "awq",
    "auto_awq",
    "fp8",
    "fbgemm_fp8",
    "fp_quant",
    "modelopt",
    "modelopt_fp4",
    "modelopt_mxfp8",
    "modelopt_mixed",
    "auto_gptq",
    "gptq",
    "gptq_marlin",
    "awq_marlin",
    "humming",
    "compressed-tensors",
    "bitsandbytes",
    "experts_int8",
    "quark",
    "moe_wna16",
    "torchao",
    "inc",
    "mxfp4",
    "gpt_oss_mxfp4",
    "deepseek_v4_fp8",
    "online",
    "fp8_per_tensor",
    "fp8_per_block",
    "fp8_per_channel",
    "int8_per_channel_weight_only",
    "mxfp8",
)
"""``model_executor/layers/quantization/__init__.py`` ``QuantizationMethods``. ``--quantization``
itself is any string there (its type hint is ``QuantizationMethods | str | None`` with the
Literal only under TYPE_CHECKING); ``ModelConfig`` refuses another name ("Unknown quantization
method")."""
DTYPES = ("auto", "bfloat16", "float", "float16", "float32", "half")
"""``config/model.py`` ``ModelDType``, sorted as ``literal_to_kwargs`` sorts choices."""
KV_CACHE_DTYPES = tuple(
    sorted(
        (
            "auto",
            "float16",
            "bfloat16",
            "fp8",
            "fp8_e4m3",
            "fp8_e5m2",
            "fp8_inc",
            "fp8_ds_mla",
            "turboquant_k8v4",
            "turboquant_4bit_nc",
            "turboquant_k3v4_nc",
            "turboquant_3bit_nc",
            "int8_per_token_head",
            "fp8_per_token_head",
            "nvfp4",
        )
    )
)
"""``config/cache.py`` ``CacheDType``: the choices of ``--kv-cache-dtype``."""
PERFORMANCE_MODES = ("balanced", "interactivity", "throughput")
"""``config/vllm.py`` ``PerformanceMode``: the choices of ``--performance-mode``."""
UVICORN_LOG_LEVELS = ("critical", "debug", "error", "info", "trace", "warning")
"""``entrypoints/openai/cli_args.py`` ``FrontendArgs.uvicorn_log_level``."""
_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)[bB](?![A-Za-z0-9])")
"""A model size in a model's name: ``Qwen3-0.6B``, ``Llama-3.2-1B-Instruct``, ``llama-70b``."""


# ----------------------------------------------------------------- vLLM's argument types


def human_readable_int(value: str) -> int:
    """vLLM's ``utils/argparse_utils.py`` ``human_readable_int``: ``1k`` is 1000, ``1K`` 1024,
    ``25.6k`` 25600 (no decimals with a binary suffix), else a plain integer."""
    value = value.strip()
    match = _HUMAN_INT.fullmatch(value)
    if match:
        number, suffix = match.groups()
        if suffix in _DECIMAL:
            return int(float(number) * _DECIMAL[suffix])
        if not number.isdigit():
            raise argparse.ArgumentTypeError(
                f"Decimals are not allowed with binary suffixes like {suffix}. "
                f"Did you mean to use {number}{suffix.lower()} instead?"
            )
        return int(number) * _BINARY[suffix]
    return int(value)


def human_readable_int_or_auto(value: str) -> int:
    """vLLM's ``human_readable_int_or_auto`` (``--max-model-len``): ``-1`` or ``auto`` is -1,
    derive it from the model."""
    value = value.strip()
    if value == "-1" or value.lower() == "auto":
        return -1
    return human_readable_int(value)


def optional_str(value: str) -> str | None:
    """vLLM's ``optional_type(str)``: an empty string or ``None`` is no value."""
    return None if value in ("", "None") else value


def _dashes(arg: str) -> str:
    """A ``--flag_name`` as ``--flag-name``, as vLLM's ``FlexibleArgumentParser.parse_args``
    rewrites everything between ``--`` and the first ``.`` (``=value`` kept as written)."""
    if not arg.startswith("--"):
        return arg
    key, eq, value = arg.partition("=")
    head, dot, tail = key[2:].partition(".")
    return f"--{head.replace('_', '-')}{dot}{tail}{eq}{value}"


# ----------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """The command line (parse with :func:`parse_args`, which also checks what vLLM checks)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=(
            "%(prog)s [MODEL] [--host HOST] [--port PORT] [--served-model-name NAME ...] "
            "[--inject KIND=VALUE ...] [--engine {simulated,transformers}] [vLLM flags]"
        ),
        description=(
            "A simulated vLLM-compatible model server for one variant, shaped like `vllm serve`."
        ),
        allow_abbrev=False,  # an abbreviation vLLM's longer flag list may not resolve
    )
    parser.add_argument("model_tag", nargs="?", metavar="MODEL", help="model name or path")

    own = parser.add_argument_group("this server")
    own.add_argument("--engine", choices=ENGINES, default="simulated", help="what answers")
    own.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="KIND=VALUE",
        help=(
            "fault, repeatable: latency=+300ms, errors=5%%, engine-errors=2%%, crash-on-start, "
            "never-ready"
        ),
    )
    own.add_argument("--namespace", help="metric label (env CONTROLPLANE_NAMESPACE, POD_NAMESPACE)")
    own.add_argument("--canary", help="metric label (env CONTROLPLANE_CANARY)")
    own.add_argument("--variant", help="metric label (env CONTROLPLANE_VARIANT)")
    own.add_argument(
        "--simulated-gpu",
        default=DEFAULT_GPU,
        metavar="GPU",
        help="GPU profile the simulated engine is timed from (profiles/gpus.yaml)",
    )
    own.add_argument(
        "--simulated-parameters",
        type=float,
        metavar="N",
        help="model parameters the simulated engine is timed for (default: the size in the "
        "model's name, as 1B in Llama-3.2-1B, else 8e9)",
    )

    kserve = parser.add_argument_group("KServe huggingfaceserver")
    kserve.add_argument("--model-name", help="the name KServe registers (served name if none)")
    kserve.add_argument("--model-dir", help="where KServe put the model (MODEL if none)")
    kserve.add_argument("--model-id", help="the Hugging Face model id (MODEL if none)")
    kserve.add_argument(
        "--http-port", type=int, help="KServe's model server port (as --port; the runtime's 8080)"
    )

    # vLLM 0.24.0: the kwargs its _compute_kwargs derives from each config field's type hint
    vllm = parser.add_argument_group("vLLM 0.24.0 flags")
    add = vllm.add_argument
    add("--model", type=str, default=None, help="model name or path (as MODEL)")
    add("--served-model-name", type=optional_str, nargs="+", metavar="NAME")
    add("--host", type=optional_str, default=None)
    add("--port", type=int, default=DEFAULT_PORT)
    add("--max-model-len", type=human_readable_int_or_auto)
    add("--gpu-memory-utilization", type=float, default=0.92)
    add("--tensor-parallel-size", "-tp", type=int, default=1)
    add("--pipeline-parallel-size", "-pp", type=int, default=1)
    add("--quantization", "-q", type=optional_str, default=None)
    add("--chat-template", type=optional_str, default=None)
    add("--dtype", type=str, choices=DTYPES, default="auto")
    add("--kv-cache-dtype", type=str, choices=KV_CACHE_DTYPES, default="auto")
    add("--seed", type=int, default=0)
    add("--load-format", type=str, default="auto")
    add("--tokenizer", type=str, default=None)
    add("--tokenizer-mode", type=str, default="auto")
    add("--revision", type=optional_str, default=None)
    add("--download-dir", type=optional_str, default=None)
    add("--generation-config", type=str, default="auto")
    add("--max-num-seqs", type=int, default=None)
    add("--max-num-batched-tokens", type=human_readable_int, default=None)
    add("--performance-mode", type=str, choices=PERFORMANCE_MODES, default="balanced")
    add("--hf-config-path", type=optional_str, default=None)
    add("--block-size", type=int, default=None)
    add("--max-logprobs", type=int, default=20)
    add("--trust-remote-code", action=argparse.BooleanOptionalAction, default=False)
    add("--enforce-eager", action=argparse.BooleanOptionalAction, default=False)
    add("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    add("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=None)
    add("--enable-log-requests", action=argparse.BooleanOptionalAction, default=False)
    add("--disable-log-stats", action="store_true")
    add("--shutdown-timeout", type=int, default=0)
    add("--uvicorn-log-level", type=str, choices=UVICORN_LOG_LEVELS, default="info")
    add("--disable-uvicorn-access-log", action=argparse.BooleanOptionalAction, default=False)
    return parser


@dataclass(frozen=True)
class ServeConfig:
    """What one run serves, where, as whom, on what simulated hardware, with which faults."""

    model: str
    served_names: tuple[str, ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    namespace: str = DEFAULT_NAMESPACE
    canary: str = ""
    variant: str = ""
    max_model_len: int | None = None
    """None: derived from the model (``auto``); the simulated engine then sets no limit."""
    faults: Faults = field(default_factory=Faults)
    crash_on_start: bool = False
    never_ready: bool = False
    engine: str = "simulated"
    quantization: str | None = None
    gpu_count: int = 1
    gpu_memory_utilization: float = 0.92
    gpu: str = DEFAULT_GPU
    parameters: float | None = None
    seed: int = 0
    batch_args: tuple[str, ...] = ()
    """The scheduler's flags as given (``--max-num-seqs``, ``--max-num-batched-tokens``,
    ``--performance-mode``): the simulated engine's batch limits, as vLLM derives them."""
    hf_config_path: str | None = None
    shutdown_timeout: int = 0
    """``--shutdown-timeout``: on SIGTERM, how long requests in flight may finish (0: none)."""
    chat_template: str | None = None
    """``--chat-template`` as given: a file, or the template itself (:func:`read_template`)."""
    system_prompt: str | None = None
    """The default system message of the chat template (a system-prompt variant's)."""
    architecture: ModelArchitecture | None = None
    """Read from the model's ``config.json`` (:func:`local_model`); None: estimated from the
    size, as the speed model does without one."""

    @property
    def served_name(self) -> str:
        return self.served_names[0]

    def identity(self) -> Identity:
        """Who the server is: the first served name, the labels, the context length, the root."""
        return Identity(
            model=self.served_name,
            namespace=self.namespace,
            canary=self.canary,
            variant=self.variant,
            max_model_len=self.max_model_len,
            root=self.model,
            system_prompt=self.system_prompt,
        )


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServeConfig:
    """The config of ``argv`` (without the program name) and ``env`` (default: the process's).

    Raises SystemExit(2) from argparse for a syntax error or an unknown flag, and
    :class:`~controlplane.errors.UsageError` for a value vLLM would refuse or a bad ``--inject``.
    """
    env = os.environ if env is None else env
    args = build_parser().parse_args([_dashes(arg) for arg in argv])
    if args.model_tag is not None and args.model is not None and args.model_tag != args.model:
        raise UsageError(f"the model is given twice: {args.model_tag!r} and --model {args.model!r}")
    model = args.model_tag or args.model or args.model_dir or args.model_id or DEFAULT_MODEL
    names = tuple(name for name in args.served_model_name or () if name)
    served = names or ((args.model_name,) if args.model_name else (model,))
    faults, crash, never_ready = parse_faults(args.inject)
    port = args.port if args.http_port is None else args.http_port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: a port is 0 to 65535")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise UsageError(
            f"--gpu-memory-utilization {args.gpu_memory_utilization:g}: must be in (0, 1]"
        )
    for flag, value in (
        ("--tensor-parallel-size", args.tensor_parallel_size),
        ("--pipeline-parallel-size", args.pipeline_parallel_size),
    ):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1")
    length = args.max_model_len
    if length is not None and length != -1 and length < 1:
        raise UsageError(f"--max-model-len {length}: a positive length, -1 or auto")
    if args.quantization is not None and args.quantization not in QUANTIZATION_METHODS:
        # vLLM 0.24.0 config/model.py ModelConfig._verify_quantization, word for word
        raise UsageError(
            f"Unknown quantization method: {args.quantization}. Must be one of "
            f"{list(QUANTIZATION_METHODS)}."
        )
    parameters = args.simulated_parameters
    if parameters is not None and not 0 < parameters <= MAX_PARAMETERS:
        raise UsageError(f"--simulated-parameters {parameters:g}: must be in (0, 1e14]")
    if parameters is None:
        parameters = parameters_in_name(model)
    for flag, count in (
        ("--max-num-seqs", args.max_num_seqs),
        ("--max-num-batched-tokens", args.max_num_batched_tokens),
    ):
        if count is not None and count < 1:
            raise UsageError(f"{flag} {count}: must be at least 1")
    batch: list[str] = []
    if args.max_num_seqs is not None:
        batch.append(f"--max-num-seqs={args.max_num_seqs}")
    if args.max_num_batched_tokens is not None:
        batch.append(f"--max-num-batched-tokens={args.max_num_batched_tokens}")
    if args.performance_mode != "balanced":
        batch.append(f"--performance-mode={args.performance_mode}")
    return ServeConfig(
        model=model,
        served_names=served,
        host=args.host or DEFAULT_HOST,
        port=port,
        namespace=_label(args.namespace, env, ENV_NAMESPACE, DEFAULT_NAMESPACE),
        canary=_label(args.canary, env, ENV_CANARY, served[0]),
        variant=_label(args.variant, env, ENV_VARIANT, served[0]),
        max_model_len=None if length is None or length == -1 else length,
        faults=faults,
        crash_on_start=crash,
        never_ready=never_ready,
        engine=args.engine,
        quantization=args.quantization,
        gpu_count=args.tensor_parallel_size * args.pipeline_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        gpu=args.simulated_gpu,
        parameters=parameters,
        seed=args.seed,
        batch_args=tuple(batch),
        hf_config_path=args.hf_config_path,
        shutdown_timeout=args.shutdown_timeout,
        chat_template=args.chat_template,
    )


def parse_faults(texts: Sequence[str]) -> tuple[Faults, bool, bool]:
    """``(faults per request, crash-on-start, never-ready)`` of the ``--inject`` values."""
    faults, crash, never_ready = Faults(), False, False
    for text in texts:
        word = text.strip()
        if word == "crash-on-start":
            crash = True
        elif word == "never-ready":
            never_ready = True
        elif "=" in word:
            kind, value = parse_fault(text)
            faults = with_fault(faults, kind, value)
        else:
            known = ", ".join([*(f"{kind}=VALUE" for kind in KINDS), *PROCESS_FAULTS])
            raise UsageError(f"--inject {text!r}: unknown fault (known: {known})")
    return faults, crash, never_ready


def parameters_in_name(model: str) -> float | None:
    """The parameter count a model's name gives (``Llama-3.2-1B-Instruct``: 1e9), else None."""
    match = _SIZE.search(model.rsplit("/", 1)[-1])
    size = float(match.group(1)) * 1e9 if match else 0.0
    return size if 0 < size <= MAX_PARAMETERS else None


def _label(flag: str | None, env: Mapping[str, str], names: Sequence[str], default: str) -> str:
    if flag:
        return flag
    return next((env[name] for name in names if env.get(name)), default)


# ----------------------------------------------------------------- the model on disk

HF_CONFIG = "config.json"
MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
"""The keys of a model's ``config.json`` vLLM 0.24.0 derives the context length from, the
smallest winning (``transformers_utils/model_arch_config_convertor.py``,
``derive_max_model_len_and_key``), ``model_max_length`` overriding the rest when set."""


def is_local(model: str) -> bool:
    """vLLM reads ``model`` from disk when it is a path there; an absolute path (KServe's
    ``/mnt/models``) never names a Hugging Face repository, so it is local or an error."""
    return os.path.isabs(model) or os.path.exists(model)


KV_HEAD_KEYS = (
    "n_head_kv",
    "num_kv_heads",
    "num_key_value_heads",
    "multi_query_group_num",
    "num_attention_groups",
)
"""Where vLLM 0.24.0 reads the KV heads in a ``config.json``, the first found winning
(``transformers_utils/model_arch_config_convertor.py``, ``get_total_num_kv_heads``; none: the
attention heads)."""


def _count(hf_config: Mapping[str, object], key: str) -> int:
    value = hf_config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def architecture_of(hf_config: Mapping[str, object]) -> ModelArchitecture | None:
    """The transformer's shape a ``config.json`` gives, as vLLM 0.24.0 reads it
    (``model_arch_config_convertor.py``: ``num_hidden_layers``; the KV heads of
    :data:`KV_HEAD_KEYS`, else ``num_attention_heads``; ``head_dim``, else
    ``hidden_size_per_head``, else ``hidden_size // num_attention_heads``); None when a part is
    missing or out of the spec's range (the speed model then estimates it from the size)."""
    heads = _count(hf_config, "num_attention_heads")
    kv_heads = next((n for n in (_count(hf_config, k) for k in KV_HEAD_KEYS) if n), heads)
    head_dim = _count(hf_config, "head_dim") or _count(hf_config, "hidden_size_per_head")
    if not head_dim and heads:
        head_dim = _count(hf_config, "hidden_size") // heads
    try:
        return ModelArchitecture(
            layers=_count(hf_config, "num_hidden_layers"), kv_heads=kv_heads, head_dim=head_dim
        )
    except ValueError:  # pydantic's ValidationError: zero or beyond the spec's bounds
        return None


def derived_max_len(hf_config: Mapping[str, object]) -> tuple[int | None, str | None]:
    """The context length a ``config.json`` allows and the key it came from (pure; vLLM's
    ``derive_max_model_len_and_key``); ``(None, None)`` when it names none."""
    found: tuple[int | None, str | None] = (None, None)
    for key in MAX_LEN_KEYS:
        value = hf_config.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if found[0] is None or value < found[0]:
            found = (value, key)
    limit = hf_config.get("model_max_length")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit:
        found = (limit, "model_max_length")
    return found


def read_template(config: ServeConfig) -> ServeConfig | str:
    """``config`` with the system message its ``--chat-template`` prepends
    (:func:`controlplane.serving.chat_template.default_system_prompt`: the template the product
    renders for a ``systemPrompt``), or vLLM 0.24.0's error for a template it cannot load. As
    vLLM loads one (``entrypoints/chat_utils.py``, ``_load_chat_template``): the file at that
    path; failing that, a value with no ``{``, ``}`` or newline is a path that failed (vLLM's
    built-in templates are not here), any other the template itself."""
    given = config.chat_template
    if given is None:
        return config
    try:
        with open(given, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        if not any(c in given for c in "{}\n"):
            return (
                f"ValueError: The supplied chat template ({given}) looks like a file path, but "
                f"it failed to be opened. Reason: {exc}"
            )
        text = given
    return replace(config, system_prompt=default_system_prompt(text))


def local_model(config: ServeConfig) -> ServeConfig | str:
    """``config`` with the context length and the architecture (:func:`architecture_of`) its
    model's ``config.json`` gives, or the error vLLM 0.24.0 raises for that directory: none or no
    ``config.json`` there (``transformers_utils/config.py``, "Invalid repository ID or local
    directory specified"), or a ``--max-model-len`` above what the config allows
    (``config/model.py`` ``_get_and_verify_max_len``). The config is read from
    ``--hf-config-path`` when given (vLLM's ``ModelConfig.hf_config_path``), else from a model
    that is a local path; a Hugging Face id without one is served as it is: nothing can be
    downloaded here."""
    folder = config.hf_config_path or (config.model if is_local(config.model) else None)
    if folder is None:
        return config
    path = os.path.join(folder, HF_CONFIG)
    try:
        with open(path, encoding="utf-8") as handle:
            hf_config = json.load(handle)
        if not isinstance(hf_config, dict):
            raise ValueError(f"{path} is not a JSON object")
    except (OSError, ValueError):
        return (
            f"ValueError: Invalid repository ID or local directory specified: "
            f"'{folder}'.\nPlease verify the following requirements:\n"
            "1. Provide a valid Hugging Face repository ID.\n"
            "2. Specify a local directory that contains a recognized configuration file.\n"
            "   - For Hugging Face models: ensure the presence of a 'config.json'.\n"
            "   - For Mistral models: ensure the presence of a 'params.json'."
        )
    config = replace(config, architecture=architecture_of(hf_config))
    derived, key = derived_max_len(hf_config)
    if derived is None:
        return config
    if config.max_model_len is None:
        return replace(config, max_model_len=derived)
    override = hf_config.get("model_max_length")
    if config.max_model_len > derived and (
        not isinstance(override, int) or config.max_model_len > override
    ):
        return (
            f"ValueError: User-specified max_model_len ({config.max_model_len}) is greater than "
            f"the derived max_model_len ({key}={derived} or model_max_length="
            f"{override} in model's config.json). To allow overriding this maximum, set the env "
            "var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."
        )
    return config


# ----------------------------------------------------------------- the engine and the run


def catalog_method(quantization: str | None, catalog: Catalog) -> str:
    """The catalogue's method for a vLLM ``--quantization`` name, for the speed model: the one
    whose flags name it (``awq_marlin`` is ``awq``, ``bitsandbytes`` the first bitsandbytes
    method), else the name without ``auto_`` where the catalogue has it, else ``none``."""
    if quantization is None:
        return "none"
    for method in catalog.methods.values():
        for found in method.vllm:
            if f"--quantization={quantization}" in found.args:
                return method.name
    bare = quantization.removeprefix("auto_")
    return bare if bare in catalog.methods else "none"


def _gpu(config: ServeConfig, catalog: Catalog) -> GpuProfile:
    try:
        return catalog.require_gpu(config.gpu)
    except ProfileError as exc:
        raise UsageError(f"--simulated-gpu: {exc}") from None


def make_engine(config: ServeConfig, catalog: Catalog) -> Engine:
    """The engine of ``config``: the simulated one (the speed model of its GPU, size and
    quantization) or the transformers one (the tiny model, quantized as the catalogue's method
    of ``--quantization``; imported only when chosen)."""
    _gpu(config, catalog)
    method = catalog_method(config.quantization, catalog)
    if config.engine == "transformers":
        from controlplane.local.engines.transformers_engine import TransformersEngine

        return TransformersEngine(method, seed=config.seed)
    spec: dict[str, object] = {"name": "model", "parameters": config.parameters}
    if config.architecture is not None:
        spec["architecture"] = config.architecture
    if config.max_model_len is not None:
        spec["max_model_len"] = min(config.max_model_len, MAX_SPEC_LEN)
    model = ModelSpec.model_validate(spec)
    variant = VariantSpec.model_validate(
        {
            "name": "variant",
            "storage_uri": "simulated",
            "quantization": method,
            "gpu": config.gpu,
            "gpu_count": min(config.gpu_count, MAX_SPEC_GPUS),
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "args": list(config.batch_args),
        }
    )
    label = f"{config.served_name}: {method} on {config.gpu}"
    return SimulatedEngine(speed_for(model, variant, catalog), label, seed=config.seed)


def crash_message(config: ServeConfig, catalog: Catalog) -> str:
    """What vLLM 0.24.0 prints when the weights do not fit at load: its model runner's error
    (``v1/worker/gpu_model_runner.py``, ``except torch.cuda.OutOfMemoryError``), the exception
    torch raises (the caching allocator's message, ``c10/cuda/CUDACachingAllocator.cpp``), and the
    API server's ``Engine core initialization failed`` (``v1/engine/utils.py``), which vLLM
    prints last; the injection says so first. Exit status 1."""
    total = _gpu(config, catalog).memory_gib
    oom = (
        f"CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has a total capacity of "
        f"{total:.2f} GiB of which 30.12 MiB is free. Including non-PyTorch memory, this process "
        f"has {total - 0.03:.2f} GiB memory in use. Of the allocated memory {total - 0.45:.2f} GiB "
        "is allocated by PyTorch, and 127.86 MiB is reserved by PyTorch but unallocated. If "
        "reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
        "documentation for Memory Management  (https://docs.pytorch.org/docs/stable/notes/"
        "cuda.html#optimizing-memory-usage-with-pytorch-cuda-alloc-conf)"
    )
    return "\n".join(
        [
            f"{PROG}: crash-on-start injected: {config.served_name} never loads",
            "(EngineCore_DP0) ERROR [gpu_model_runner.py] Failed to load model - not enough GPU "
            "memory. Try lowering --gpu-memory-utilization to free memory for weights, increasing "
            "--tensor-parallel-size, or using --quantization. See "
            "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more tips. "
            f"(original error: {oom})",
            f"torch.OutOfMemoryError: {oom}",
            "RuntimeError: Engine core initialization failed. See root cause above. "
            "Failed core proc(s): {'EngineCore_DP0': 1}",
        ]
    )


def describe(config: ServeConfig, engine: str) -> str:
    """The start-up line: what is served, as whom, on ``engine``, with which faults."""
    faults = config.faults.describe()
    if config.never_ready:
        faults = "never ready" if faults == "none" else f"{faults}, never ready"
    return (
        f"INFO:     serving {config.model} as {', '.join(config.served_names)} "
        f"(namespace={config.namespace} canary={config.canary} variant={config.variant}) on "
        f"{engine}; faults: {faults}"
    )


async def start(config: ServeConfig, catalog: Catalog | None = None) -> ModelServer:
    """A started server for ``config`` (not for ``crash_on_start``). OSError when it cannot
    listen; UsageError for an unknown ``--simulated-gpu``."""
    engine = make_engine(config, catalog or load_catalog())
    server = ModelServer(
        config.identity(),
        engine,
        config.faults,
        seed=config.seed,
        host=config.host,
        port=config.port,
        shutdown_s=config.shutdown_timeout,
    )
    await server.start()
    return server


async def run(
    config: ServeConfig,
    stop: asyncio.Event | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Serve ``config`` until SIGTERM / SIGINT (or ``stop``); the exit status."""
    say = out or _stdout
    catalog = load_catalog()
    if config.crash_on_start:
        print(crash_message(config, catalog), file=sys.stderr, flush=True)
        return 1
    loaded = local_model(config)
    if not isinstance(loaded, str):
        loaded = read_template(loaded)
    if isinstance(loaded, str):
        print(loaded, file=sys.stderr, flush=True)
        return 1
    config = loaded
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        if config.never_ready:
            return await _load_for_ever(config, stop, say)
        try:
            server = await start(config, catalog)
        except OSError as exc:
            return _cannot_listen(config, exc)
        except EngineError as exc:  # vLLM's engine fails to load: one line, exit 1
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
            return 1
        say(describe(config, server.engine.description))
        say(f"INFO:     Simulated vLLM server running on {server.url} (Press CTRL+C to quit)")
        try:
            await stop.wait()
        finally:
            say("INFO:     Shutting down")
            await server.stop()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 0


def _cannot_listen(config: ServeConfig, exc: OSError) -> int:
    reason = exc.strerror or str(exc)
    print(
        f"{PROG}: error: cannot listen on {config.host}:{config.port}: {reason}",
        file=sys.stderr,
        flush=True,
    )
    return 1


async def _load_for_ever(
    config: ServeConfig, stop: asyncio.Event, say: Callable[[str], None]
) -> int:
    """``never-ready``: what vLLM 0.24.0 does while its engine loads, for ever. Its API server
    binds the port before it builds the engine and listens only once the engine is up
    (``entrypoints/openai/api_server.py``, ``setup_server`` / ``create_server_socket``: bound,
    no ``listen``), so a connection is refused: neither a TCP readiness probe (KServe's default,
    on 8080) nor an HTTP one on ``/health`` ever passes. Exit 0 on SIGTERM / SIGINT."""
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        return _cannot_listen(config, exc)
    try:
        say(describe(config, "its engine"))
        say(f"INFO:     Loading {config.model}: never-ready injected, the load never ends")
        await stop.wait()
        say("INFO:     Shutting down")
    finally:
        sock.close()
    return 0


def _stdout(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The process: parse, then serve; exit status 0 (stopped), 1 (crash / cannot listen) or 2
    (bad input; argparse's own refusals exit 2 through SystemExit)."""
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
        return asyncio.run(run(config))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except ControlPlaneError as exc:  # a broken install (the packaged catalogue missing, say)
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
