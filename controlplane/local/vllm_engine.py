"""The real vLLM behind the product's predictor arguments: KServe's runtime flags mapped to vLLM's.

The product renders a predictor for KServe's ``kserve-huggingfaceserver`` runtime: its own flags
(``--model_name``; KServe's runtime adds ``--model_dir`` and ``--http_port``) followed by ``vllm
serve`` flags. KServe v0.20.0's ``huggingfaceserver`` reads its own flags and hands the rest to
vLLM (``python/huggingfaceserver/huggingfaceserver/__main__.py``: ``args.model = args.model_id
or args.model_dir``; the served name is ``--served-model-name``'s first, else ``--model_name``).
:func:`vllm_argv` does that mapping for vLLM's own OpenAI server, and :func:`main` replaces this
process with it (``python -E -m vllm.entrypoints.openai.api_server``: ``-E`` so that vLLM imports
its own packages, not the ones an image's ``PYTHONPATH`` names for this module).

The HTTP server ``huggingfaceserver`` runs is KServe's own (``kserve.ModelServer``, uvicorn, for
the vLLM backend too), which keeps an idle connection open ``--timeout-keep-alive`` seconds, 65 by
default (``python/kserve/kserve/model_server.py``); vLLM's own server keeps one 5 s
(``VLLM_HTTP_TIMEOUT_KEEP_ALIVE``, ``vllm/envs.py``, 0.32.0). :func:`server_environment` gives
vLLM KServe's figure, so that a gateway in front of it meets the idle timeout the real runtime
has. It matters: a gateway that reuses an idle connection the engine has just closed answers
that request 502 (docs/serving.md, "Keep-alive").

Run as ``python -m controlplane.local.vllm_engine`` by the real node's vLLM runtime
(``make kube-up ... ENGINE=vllm``); :func:`server_command` is also how ``canaryctl up --engine
vllm`` starts vLLM (:mod:`controlplane.local.engines.vllm_engine`). Imports nothing beyond the
standard library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
KSERVE_FLAGS = {
    "model_name": "name",
    "model_dir": "dir",
    "model_id": "id",
    "http_port": "port",
    "timeout_keep_alive": "keep-alive",
}
"""``huggingfaceserver``'s own flags this mapping reads (either spelling, ``_`` or ``-``)."""
KEEP_ALIVE_ENV = "VLLM_HTTP_TIMEOUT_KEEP_ALIVE"
"""The variable vLLM 0.32.0's OpenAI server reads its uvicorn ``timeout_keep_alive`` from
(``vllm/envs.py``; ``vllm/entrypoints/launchers/api_server/entry.py``)."""
KSERVE_KEEP_ALIVE_S = 65
"""KServe v0.20.0's ``--timeout-keep-alive`` default (``python/kserve/kserve/model_server.py``),
whose help says it "should be longer than the proxy idle timeout to avoid intermittent 503
errors from the proxy"."""


def _split(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """KServe's own flags (by :data:`KSERVE_FLAGS` key, the last one given wins) and the rest."""
    own: dict[str, str] = {}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        key = flag.lstrip("-").replace("-", "_")
        if flag.startswith("--") and key in KSERVE_FLAGS:
            own[key] = value if eq else next(args, "")
        else:
            rest.append(arg)
    return own, rest


def given(args: Sequence[str], flag: str) -> bool:
    """Whether ``args`` set ``flag`` (``--flag`` or ``--flag=value``; ``_`` and ``-`` alike)."""
    name = flag.replace("_", "-")
    return any(arg.split("=", 1)[0].replace("_", "-") == name for arg in args)


def server_command(python: str, args: Sequence[str], *, isolated: bool = True) -> list[str]:
    """The argv that runs vLLM's OpenAI server under ``python`` with ``args``. ``isolated``
    (``-E``): vLLM imports that interpreter's own packages, not the ones this environment's
    ``PYTHONPATH`` names."""
    return [python, *(["-E"] if isolated else []), "-m", SERVER_MODULE, *args]


def vllm_argv(argv: Sequence[str]) -> list[str]:
    """vLLM's OpenAI server flags for ``argv``, the runtime's and the predictor's flags in
    KServe's order (pure): ``--model`` from ``--model_id`` or ``--model_dir``, ``--port`` from
    ``--http_port``, ``--served-model-name`` from ``--model_name`` unless given; every other flag
    as it came, so a flag vLLM refuses still fails the engine."""
    own, rest = _split(argv)
    out: list[str] = []
    model = own.get("model_id") or own.get("model_dir")
    if model:
        out.append(f"--model={model}")
    if own.get("http_port"):
        out.append(f"--port={own['http_port']}")
    if own.get("model_name") and not given(rest, "--served-model-name"):
        out.append(f"--served-model-name={own['model_name']}")
    return [*out, *rest]


def server_environment(argv: Sequence[str], base: Mapping[str, str]) -> dict[str, str]:
    """vLLM's environment for ``argv`` (pure): ``base`` with the keep-alive KServe's server
    would have, ``--timeout-keep-alive`` when ``argv`` gives it, else ``base``'s own
    :data:`KEEP_ALIVE_ENV`, else :data:`KSERVE_KEEP_ALIVE_S`."""
    own, _ = _split(argv)
    env = dict(base)
    if own.get("timeout_keep_alive"):
        env[KEEP_ALIVE_ENV] = own["timeout_keep_alive"]
    env.setdefault(KEEP_ALIVE_ENV, str(KSERVE_KEEP_ALIVE_S))
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """Become vLLM's OpenAI server with :func:`vllm_argv` of ``argv`` (default: this process's)
    and :func:`server_environment`."""
    given_argv = sys.argv[1:] if argv is None else argv
    command = server_command(sys.executable, vllm_argv(given_argv))
    print("exec " + " ".join(command), file=sys.stderr, flush=True)
    os.execve(sys.executable, command, server_environment(given_argv, os.environ))
    return 0  # not reached: execv replaces the process


if __name__ == "__main__":
    raise SystemExit(main())
