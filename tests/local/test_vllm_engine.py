"""The real vLLM's command lines: ``python -m controlplane.local.vllm_engine`` maps KServe's
runtime flags as its ``huggingfaceserver`` maps them, every other flag left for vLLM's own parser;
``canaryctl up --engine vllm`` (:mod:`controlplane.local.engines.vllm_engine`) finds vLLM and
starts its server per replica, with the CPU defaults where there is no GPU."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml
from support.canaries import canary_dict
from support.local import UP_VERB

from controlplane.cli import main as cli
from controlplane.local import vllm_engine
from controlplane.local.engines import vllm_engine as engines_vllm
from controlplane.local.engines.base import EngineError
from controlplane.local.engines.vllm_engine import (
    PYTHON_ENV,
    VllmEngine,
    VllmPython,
    cpu_defaults,
    find_vllm_python,
    local_model_problem,
    log_reason,
    model_location,
)
from controlplane.local.vllm_engine import (
    KEEP_ALIVE_ENV,
    KSERVE_KEEP_ALIVE_S,
    given,
    server_command,
    server_environment,
    vllm_argv,
)
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.load import load_file

RUNTIME = ["--model_name=support-llm", "--model_dir=/mnt/models", "--http_port=8080"]


def test_kserves_flags_become_vllms_and_the_rest_is_passed_in_order() -> None:
    product = ["--served-model-name=support-llm", "--max-model-len=8192", "--dtype=float32"]
    assert vllm_argv([*RUNTIME, *product]) == [
        "--model=/mnt/models",
        "--port=8080",
        *product,
    ]


def test_the_model_name_is_the_served_name_when_none_is_given() -> None:
    assert vllm_argv(RUNTIME) == [
        "--model=/mnt/models",
        "--port=8080",
        "--served-model-name=support-llm",
    ]


def test_a_model_id_wins_over_the_model_dir_and_dashes_and_spaces_are_read() -> None:
    argv = ["--model-dir", "/mnt/models", "--model_id", "org/model", "--http-port", "9000"]
    assert vllm_argv(argv) == ["--model=org/model", "--port=9000"]


def test_a_flag_vllm_would_refuse_is_left_for_vllm_to_refuse() -> None:
    assert vllm_argv(["--no-such-flag=1"]) == ["--no-such-flag=1"]


def test_main_becomes_the_server_without_the_images_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(
        vllm_engine.os, "execve", lambda path, argv, env: seen.append((path, argv, env))
    )
    monkeypatch.delenv(KEEP_ALIVE_ENV, raising=False)
    vllm_engine.main([*RUNTIME, "--timeout-keep-alive=90"])
    ((path, argv, env),) = seen
    assert argv[:4] == [path, "-E", "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[4:] == vllm_argv(RUNTIME)  # the keep-alive is KServe's flag, not vLLM's
    assert env[KEEP_ALIVE_ENV] == "90"


def test_vllm_keeps_an_idle_connection_as_long_as_kserves_server_does() -> None:
    """vLLM's own 5 s would close connections a gateway still holds (docs/serving.md)."""
    assert server_environment(RUNTIME, {"PATH": "/bin"}) == {
        "PATH": "/bin",
        KEEP_ALIVE_ENV: str(KSERVE_KEEP_ALIVE_S),
    }
    assert KSERVE_KEEP_ALIVE_S == 65  # KServe v0.20.0's --timeout-keep-alive default
    assert server_environment(RUNTIME, {KEEP_ALIVE_ENV: "30"})[KEEP_ALIVE_ENV] == "30"
    given_flag = server_environment(["--timeout_keep_alive", "120"], {KEEP_ALIVE_ENV: "30"})
    assert given_flag[KEEP_ALIVE_ENV] == "120"


# ``canaryctl up --engine vllm``: the command line and environment of each replica's vLLM, where
# vLLM is found, and the one-line errors when it cannot start (no vLLM needed).


def canary_file(
    folder: Path, stable: str = "", candidate: str = "", args: tuple[str, ...] = ()
) -> Path:
    """A canary of two local models under ``folder`` (each a ``config.json``), written there."""
    for name in ("fp32", "w8a8"):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "config.json").write_text("{}")
    data = canary_dict(
        "tiny-vllm",
        "default",
        model={"name": "tiny", "maxModelLen": 4096, "vllmVersion": "0.32.0"},
        stable={"name": "fp32", "storageUri": stable or str(folder / "fp32"), "gpu": "nvidia-l4"},
        candidate={
            "name": "w8a8",
            "storageUri": candidate or str(folder / "w8a8"),
            "gpu": "nvidia-l4",
            "args": list(args),
        },
        traffic={"router": "gateway-api", "hosts": ["tiny.example.com"]},
        analysis={
            "interval": "1m",
            "window": "20m",
            "metrics": [{"name": "errors", "builtin": "error-rate"}],
        },
        steps=[
            {
                "weight": 50,
                "duration": "1h",
                "rollbackOn": [{"metric": "errors", "above": "2%", "minSamples": 5}],
            },
            {"weight": 100},
        ],
        shadow=None,
        budget=None,
    )
    path = folder / "canary.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def engine_for(path: Path, role: str = "candidate") -> VllmEngine:
    canary = load_file(path)[0]
    return VllmEngine(canary.spec.model, canary.spec.variant(role), load_catalog())


def test_on_a_cpu_vllm_runs_as_a_module_in_float32_eager_before_the_rendered_flags(
    tmp_path: Path,
) -> None:
    engine = engine_for(canary_file(tmp_path))
    engine.cpu, engine.port = True, 8123
    argv = engine.command(VllmPython("/opt/vllm/bin/python", isolated=True))
    assert argv == [
        "/opt/vllm/bin/python",
        "-E",
        "-m",
        "vllm.entrypoints.openai.api_server",
        f"--model={tmp_path / 'w8a8'}",
        "--host=127.0.0.1",
        "--port=8123",
        "--served-model-name=tiny",
        "--dtype=float32",
        "--enforce-eager",
        "--max-model-len=4096",
        "--gpu-memory-utilization=0.45",  # capped so that both variants fit one GPU
        "--shutdown-timeout=120",
    ]
    assert engine.environment({"PATH": "/bin"}, 2) == {
        "PATH": "/bin",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        # unpinned, on half the cores: two engines run beside each other
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": "1",
        KEEP_ALIVE_ENV: str(KSERVE_KEEP_ALIVE_S),
    }
    assert engine.environment({"VLLM_CPU_KVCACHE_SPACE": "4"}, 2)["VLLM_CPU_KVCACHE_SPACE"] == "4"


@pytest.mark.parametrize(("cpus", "threads"), [(1, "1"), (2, "1"), (3, "1"), (8, "4"), (64, "32")])
def test_each_engine_on_a_cpu_gets_an_equal_share_of_the_cores_unpinned(
    tmp_path: Path, cpus: int, threads: str
) -> None:
    engine = engine_for(canary_file(tmp_path))
    engine.cpu = True
    env = engine.environment({}, cpus)
    assert (env["VLLM_CPU_OMP_THREADS_BIND"], env["OMP_NUM_THREADS"]) == ("nobind", threads)


def test_the_usable_cores_are_counted_without_an_affinity_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert engines_vllm.usable_cpus() >= 1
    monkeypatch.delattr(engines_vllm.os, "sched_getaffinity", raising=False)  # as on macOS
    monkeypatch.setattr(engines_vllm.os, "cpu_count", lambda: 6)
    assert engines_vllm.usable_cpus() == 6
    monkeypatch.setattr(engines_vllm.os, "cpu_count", lambda: None)
    assert engines_vllm.usable_cpus() == 1


def test_threading_the_caller_sets_is_kept(tmp_path: Path) -> None:
    engine = engine_for(canary_file(tmp_path))
    engine.cpu = True
    given = {"VLLM_CPU_OMP_THREADS_BIND": "0-3|4-7", "OMP_NUM_THREADS": "4"}
    env = engine.environment(given, 16)
    assert {k: env[k] for k in given} == given


def test_this_python_runs_vllm_without_isolation_and_a_gpu_gets_no_cpu_defaults(
    tmp_path: Path,
) -> None:
    engine = engine_for(canary_file(tmp_path))
    argv = engine.command(VllmPython(sys.executable, isolated=False))
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert not any(a.startswith(("--dtype", "--enforce-eager")) for a in argv)
    assert engine.environment({}, 2) == {KEEP_ALIVE_ENV: str(KSERVE_KEEP_ALIVE_S)}
    assert engine.description.startswith("vLLM on the GPU: --model=")


@pytest.mark.parametrize(
    ("args", "defaults"),
    [
        (("--dtype=float16",), ["--enforce-eager"]),
        (("--dtype", "float16", "--no-enforce-eager"), []),
        (("--enforce_eager",), ["--dtype=float32"]),
    ],
    ids=["dtype", "both", "underscore"],
)
def test_a_variants_args_replace_the_cpu_defaults_they_set(
    tmp_path: Path, args: tuple[str, ...], defaults: list[str]
) -> None:
    engine = engine_for(canary_file(tmp_path, args=args))
    assert cpu_defaults(engine.flags) == defaults
    engine.cpu = True
    argv = engine.arguments()
    assert argv[-len(args) :] == list(args)  # the variant's own flags last: they win
    assert argv[4 : 4 + len(defaults)] == defaults


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (
            "x\n  Value error, Invalid repository ID or local directory specified: '/m'.\n"
            " [type=value_error, input_value=ArgsKwargs]",
            "Value error, Invalid repository ID or local directory specified: '/m'.",
        ),
        (
            "Traceback\ntorch.OutOfMemoryError: CUDA out of memory.\nRuntimeError: Engine core "
            "initialization failed. See root cause above.",
            "RuntimeError: Engine core initialization failed. See root cause above.",
        ),
        ("INFO loading\nINFO done", None),
    ],
    ids=["pydantic", "last-error", "none"],
)
def test_the_reason_is_the_last_error_line_of_the_log(log: str, reason: str | None) -> None:
    assert log_reason(log) == reason


def test_given_reads_both_spellings_and_the_value_forms() -> None:
    assert given(["--max_model_len=4"], "--max-model-len")
    assert given(["--dtype", "half"], "--dtype")
    assert not given(["--dtype-x=1"], "--dtype")
    assert server_command("py", ["--a"]) == ["py", "-E", "-m", vllm_engine.SERVER_MODULE, "--a"]


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("hf://org/model", None),
        ("org/model", None),  # a Hugging Face id, as vLLM reads one that is no folder here
        ("pvc://models/tiny", "is a cluster's storage"),
        ("s3://bucket/tiny", "is a cluster's storage"),
        ("/no/such/model", "model path /no/such/model does not exist"),
        ("file:///no/such/model", "model path /no/such/model does not exist"),
        ("./no-such-model", "model path ./no-such-model does not exist"),
    ],
)
def test_what_vllm_cannot_load_here(uri: str, problem: str | None) -> None:
    found = local_model_problem(uri)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_an_existing_path_is_served(tmp_path: Path) -> None:
    assert local_model_problem(str(tmp_path)) is None
    assert model_location(f"file://{tmp_path}") == str(tmp_path)
    assert model_location("hf://org/model") == "org/model"


def test_vllm_is_found_where_the_environment_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    monkeypatch.setattr(engines_vllm, "_imports_vllm", lambda exe: exe == str(python))
    assert find_vllm_python({PYTHON_ENV: str(python)}) == VllmPython(str(python), isolated=True)
    with pytest.raises(EngineError, match=f"{PYTHON_ENV}=/no/python: no such program"):
        find_vllm_python({PYTHON_ENV: "/no/python"})
    monkeypatch.setattr(engines_vllm, "_imports_vllm", lambda exe: False)
    with pytest.raises(EngineError, match=f"cannot import vllm; install vLLM .* {PYTHON_ENV}"):
        find_vllm_python({PYTHON_ENV: str(python)})


def test_else_this_python_then_the_one_the_vllm_command_runs_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "vllm"
    script.write_text("#!/opt/vllm/bin/python3.12 -s\nfrom vllm.entrypoints.cli.main import main\n")
    script.chmod(0o755)
    monkeypatch.setattr(
        engines_vllm, "_imports_vllm", lambda exe: exe == "/opt/vllm/bin/python3.12"
    )
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name)
    )
    assert find_vllm_python({"PATH": str(tmp_path)}) == VllmPython(sys.executable, False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    found = find_vllm_python({"PATH": str(tmp_path)})
    assert found == VllmPython("/opt/vllm/bin/python3.12", isolated=True)
    with pytest.raises(EngineError, match="--engine vllm: no vLLM found"):
        find_vllm_python({"PATH": str(tmp_path / "empty")})


def up_vllm(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(cli.VERBS, "up", UP_VERB)
    exited = cli.main(["up", str(path), "--engine", "vllm", "--load", "0"])
    err = capsys.readouterr().err
    assert exited == 1, err
    assert "Traceback" not in err
    return err


def test_up_without_vllm_says_how_to_point_at_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "no-python"))
    err = up_vllm(canary_file(tmp_path), capsys, monkeypatch)
    assert err.strip().splitlines() == [
        f"error: {PYTHON_ENV}={tmp_path / 'no-python'}: no such program"
    ]


def test_up_with_a_missing_model_path_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    err = up_vllm(canary_file(tmp_path, stable="/no/such/model"), capsys, monkeypatch)
    assert err.strip().splitlines() == [
        "error: --engine vllm, fp32: model path /no/such/model does not exist"
    ]


@pytest.mark.binary  # a stand-in for vLLM's python that fails as vLLM does
def test_a_server_that_exits_while_starting_is_one_line_and_its_logs_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "python3"
    python.write_text(
        '#!/bin/sh\n[ "$2" = -c ] && exit 0\n'
        'echo "INFO loading $4"\necho "RuntimeError: Engine core initialization failed"\nexit 1\n'
    )
    python.chmod(0o755)
    monkeypatch.setenv(PYTHON_ENV, str(python))
    monkeypatch.setattr(engines_vllm, "gpu_present", lambda: False)
    engine = engine_for(canary_file(tmp_path))
    with pytest.raises(EngineError) as raised:
        asyncio.run(engine.start())
    first, *tail = str(raised.value).splitlines()
    assert first == (
        "vLLM for w8a8 exited with 1 while starting: "
        "RuntimeError: Engine core initialization failed; its log ends with:"
    )
    assert tail == [
        f"INFO loading --model={tmp_path / 'w8a8'}",
        "RuntimeError: Engine core initialization failed",
    ]
    assert engine.log is None or not engine.log.exists()  # stopped and cleaned up
