"""A replica of ``canaryctl up`` is the pod's command, and its engine is the one ``up`` planned.

``up`` starts each replica as ``python -m controlplane.local.serve`` with the vLLM flags the
cluster renders for the variant (:func:`controlplane.local.replicas.serve_command`). What the
process then builds from those flags (its batch limits from ``--max-num-seqs``, its KV cache
from the architecture's ``config.json`` given as ``--hf-config-path``, its quantization from
the catalogue's flags, a system prompt from ``--chat-template``) must be exactly the speed model
the capacity plan sized the replicas with: checked here for every shipped spec's variants, by
parsing the command as the process does (no process is started).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.canaries import CANDIDATE, WRITTEN_OUT, model_canary

from controlplane.local import serve
from controlplane.local.engines import make_engine
from controlplane.local.engines.simulated import SimulatedEngine
from controlplane.local.inject import Faults
from controlplane.local.replicas import serve_command
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.load import load_file
from controlplane.spec.models import ModelCanary, VariantSpec

ROOT = Path(__file__).resolve().parents[2]
SPECS = WRITTEN_OUT
CATALOG = load_catalog()


def _served(argv: list[str]) -> serve.ServeConfig:
    """The config the process builds from ``argv``, its model's config.json and template read."""
    assert argv[1:3] == ["-m", "controlplane.local.serve"]
    config = serve.local_model(serve.parse_args(argv[3:], env={}))
    assert not isinstance(config, str), config
    config = serve.read_template(config)
    assert not isinstance(config, str), config
    return config


def _engines(
    canary: ModelCanary, variant: VariantSpec, files: Path
) -> tuple[SimulatedEngine, SimulatedEngine, serve.ServeConfig]:
    argv = serve_command(
        canary, variant, CATALOG, engine="simulated", faults=Faults(), seed=7, files=files
    )
    config = _served(argv)
    in_process = make_engine("simulated", canary.spec.model, variant, CATALOG)
    process = serve.make_engine(config, CATALOG)
    assert isinstance(in_process, SimulatedEngine)
    assert isinstance(process, SimulatedEngine)
    return in_process, process, config


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_each_replica_process_runs_the_engine_the_plan_sized(path: Path, tmp_path: Path) -> None:
    (canary,) = load_file(path)
    for variant in (canary.spec.stable, canary.spec.candidate):
        in_process, process, config = _engines(canary, variant, tmp_path)
        assert process.speed == in_process.speed, (path.name, variant.name)
        who = config.identity()
        assert (who.model, who.namespace, who.canary, who.variant) == (
            canary.spec.model.name,
            canary.metadata.namespace,
            canary.metadata.name,
            variant.name,
        )
        assert who.system_prompt == variant.system_prompt
        assert (config.host, config.port, config.seed) == ("127.0.0.1", 0, 7)


def test_the_batch_flags_and_the_architecture_reach_the_process(tmp_path: Path) -> None:
    """What the shipped specs may not show: a variant's ``--max-num-seqs`` and the model's
    ``architecture`` each change the process's engine as they change the plan's."""
    candidate = {**CANDIDATE, "args": ["--max-num-seqs=16", "--max-num-batched-tokens=4096"]}
    model = {
        "name": "support-llm",
        "parameters": 8e9,
        "architecture": {"layers": 40, "kvHeads": 8, "headDim": 128},
    }
    canary = model_canary(candidate=candidate, model=model)
    in_process, process, config = _engines(canary, canary.spec.candidate, tmp_path)
    assert process.speed == in_process.speed
    assert (process.speed.max_num_seqs, process.speed.max_num_batched_tokens) == (16, 4096)
    assert config.architecture == canary.spec.model.architecture
    plain = model_canary(model={**model, "architecture": None})
    _, estimated, _ = _engines(plain, plain.spec.candidate, tmp_path)
    assert estimated.speed.kv_capacity_tokens != process.speed.kv_capacity_tokens


@pytest.mark.parametrize(
    "faults",
    [Faults(latency_s=0.3), Faults(error_fraction=0.05), Faults(0.05, 0.1, 0.02), Faults()],
    ids=["latency", "errors", "all", "none"],
)
def test_faults_reach_the_process_as_they_were_asked(faults: Faults) -> None:
    parsed, crash, never = serve.parse_faults(faults.injections())
    assert (parsed, crash, never) == (faults, False, False)


def test_a_template_the_process_cannot_open_is_vllms_error(tmp_path: Path) -> None:
    config = serve.parse_args(["m", f"--chat-template={tmp_path / 'missing.jinja'}"], env={})
    refused = serve.read_template(config)
    assert isinstance(refused, str)
    assert refused.startswith("ValueError: The supplied chat template")
    inline = serve.parse_args(["m", "--chat-template={{ messages }}"], env={})
    found = serve.read_template(inline)
    assert not isinstance(found, str)
    assert found.system_prompt is None


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        ({"num_hidden_layers": 32, "num_key_value_heads": 8, "head_dim": 128}, (32, 8, 128)),
        # Llama-2-7B: no KV-head key (the attention heads), the head size from the hidden size
        ({"num_hidden_layers": 32, "num_attention_heads": 32, "hidden_size": 4096}, (32, 32, 128)),
        # Falcon's key first; a head_dim of null falls back
        (
            {"num_hidden_layers": 60, "n_head_kv": 8, "num_key_value_heads": 4,
             "num_attention_heads": 64, "hidden_size": 8192, "head_dim": None},
            (60, 8, 128),
        ),
        ({"num_attention_heads": 32, "hidden_size": 4096}, None),  # no layers: estimated
        ({}, None),
    ],
)  # fmt: skip
def test_the_architecture_is_read_from_config_json_as_vllm_reads_it(
    config: dict[str, object], shape: tuple[int, int, int] | None
) -> None:
    found = serve.architecture_of(config)
    got = None if found is None else (found.layers, found.kv_heads, found.head_dim)
    assert got == shape
