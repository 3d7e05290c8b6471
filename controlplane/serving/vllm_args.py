"""The vLLM command-line flags of one variant (pure).

Owns turning a variant's quantization, memory and parallelism into ``vllm serve`` flags, which
KServe's Hugging Face runtime takes verbatim in ``args`` (it uses vLLM's own ``make_arg_parser``);
the quantization flags per version are data in ``profiles/quantization.yaml``. Also
:func:`variant_problems` for validation. See docs/serving.md, "vLLM flags".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.errors import Problem, ProfileError, SpecError
from controlplane.profiles.catalog import Catalog, GpuProfile
from controlplane.serving.versions import quantization_problem, resolve_vllm_version
from controlplane.spec.vllm_version import parse_vllm_version

if TYPE_CHECKING:
    from controlplane.spec.models import ModelSpec, VariantSpec

# Flags the renderer owns: a user arg repeating one of them would silently fight the rendering.
OWNED_FLAGS = (
    "--model_name",
    "--model-name",
    "--served-model-name",
    "--max-model-len",
    "--max_model_len",
    "--gpu-memory-utilization",
    "--tensor-parallel-size",
    "--quantization",
    "--chat-template",
    "--shutdown-timeout",
)


SHUTDOWN_S = 120
"""vLLM's ``--shutdown-timeout``: on SIGTERM the engine lets requests in flight finish for up to
this long. vLLM's default, 0, aborts them (``vllm/engine/arg_utils.py``, "0 = abort, >0 = wait";
``vllm/v1/engine/core.py``, ``_handle_shutdown``; read in 0.24.0 and 0.32.0). 120 s covers about
4,000 tokens at 30 ms a token; the pod's grace period covers it (``render.GRACE_S``)."""
SHUTDOWN_SINCE = (0, 18, 0)
"""The vLLM that added the flag (vllm-project/vllm#36666), as KServe v0.20.0's LLMInferenceService
template says (``config/llmisvcconfig/config-llm-template.yaml``); older ones get no flag."""


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def variant_problems(
    variant: VariantSpec, catalog: Catalog, path: str, *, vllm_version: str | None = None
) -> list[Problem]:
    """Every serving problem of one variant (``path`` is e.g. ``spec.candidate``).

    An unknown GPU, a quantization the GPU (or vLLM) cannot run, with ``vllm_version`` a
    quantization that vLLM version does not have (or an unparseable version), and user ``args``
    that repeat a flag the controller sets from the spec.
    """
    problems = []
    gpu = catalog.gpu(variant.gpu)
    if gpu is None:
        problems.append(
            Problem(
                f"{path}.gpu",
                f"unknown GPU {variant.gpu!r}; known: {', '.join(catalog.gpu_names())}",
            )
        )
    else:
        try:
            catalog.support(variant.quantization, variant.gpu)
        except ProfileError as exc:
            problems.append(Problem(f"{path}.quantization", str(exc)))
    if vllm_version is not None:
        message = quantization_problem(variant.quantization, catalog, vllm_version)
        if message is not None:
            problems.append(Problem(f"{path}.quantization", message))
    for i, arg in enumerate(variant.args):
        name = _flag_name(arg)
        if name in OWNED_FLAGS:
            problems.append(
                Problem(
                    f"{path}.args[{i}]",
                    f"{name} is set by the controller from the spec; remove it from args",
                )
            )
    return problems


def resolve_gpu(
    variant: VariantSpec, catalog: Catalog, path: str, *, vllm_version: str | None = None
) -> GpuProfile:
    """The variant's GPU profile after checking the variant; SpecError with every problem."""
    problems = variant_problems(variant, catalog, path, vllm_version=vllm_version)
    if problems:
        raise SpecError(problems)
    return catalog.require_gpu(variant.gpu)


def vllm_flags(
    model: ModelSpec,
    variant: VariantSpec,
    catalog: Catalog,
    *,
    chat_template: str | None = None,
    path: str = "spec.variant",
    vllm_version: str | None = None,
    shutdown: bool = True,
) -> list[str]:
    """The vLLM flags of ``variant`` on ``vllm_version`` (None: the model's), user ``args``
    last, without the model's location or name. ``shutdown=False`` leaves
    ``--shutdown-timeout`` to KServe (the LLMInferenceService). SpecError (paths under ``path``)
    when the variant cannot be served on that vLLM."""
    version = vllm_version if vllm_version is not None else resolve_vllm_version(model)
    resolve_gpu(variant, catalog, path, vllm_version=version)
    key = parse_vllm_version(version)
    assert key is not None  # resolve_gpu raised otherwise
    flags = [
        f"--max-model-len={model.max_model_len}",
        f"--gpu-memory-utilization={variant.gpu_memory_utilization:g}",
    ]
    if variant.gpu_count > 1:
        flags.append(f"--tensor-parallel-size={variant.gpu_count}")
    flags += catalog.quant(variant.quantization).vllm_args_for(key)
    if chat_template is not None:
        flags.append(f"--chat-template={chat_template}")
    if shutdown and key >= SHUTDOWN_SINCE:
        flags.append(f"--shutdown-timeout={SHUTDOWN_S}")
    flags += variant.args
    return flags


def kserve_args(
    model: ModelSpec,
    variant: VariantSpec,
    catalog: Catalog,
    *,
    chat_template: str | None = None,
    path: str = "spec.variant",
    vllm_version: str | None = None,
) -> list[str]:
    """``args`` of the KServe Hugging Face runtime: the model name clients send, then vLLM flags.

    ``--model_name`` is the runtime's own flag (the name KServe registers and routes on; the
    runtime's default is the InferenceService name, which differs per variant, and a later flag
    wins); ``--served-model-name`` is vLLM's (the ``model`` of OpenAI responses and the
    ``model_name`` label of vLLM's metrics). Both are ``spec.model.name``, so clients and
    dashboards see one model whichever variant answers.
    """
    return [
        f"--model_name={model.name}",
        f"--served-model-name={model.name}",
        *vllm_flags(
            model,
            variant,
            catalog,
            chat_template=chat_template,
            path=path,
            vllm_version=vllm_version,
        ),
    ]
