"""A replica's process as ``canaryctl up`` runs it (``replicas.ServerProcess``).

Started for real: it listens on the port it printed, says what it serves, and stops on SIGTERM
with status 0; a process that exits before it listens is an error carrying its last lines, and
a refusal of its engine (vLLM's one line, exit 1) is an ``EngineError``, as an engine started in
process raises.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request

import pytest

from controlplane.local.engines.base import EngineError
from controlplane.local.replicas import SERVE_MODULE, LocalStackError, ServerProcess

pytestmark = pytest.mark.binary

BASE = [sys.executable, "-m", SERVE_MODULE, "org/model-1B", "--host=127.0.0.1", "--port=0"]


def test_it_listens_says_what_it_serves_and_stops_cleanly() -> None:
    async def main() -> tuple[str, int | None, int]:
        process = ServerProcess([*BASE, "--variant=nf4"], "m-nf4-0")
        await process.start()
        try:
            status = await asyncio.to_thread(
                lambda: urllib.request.urlopen(process.url + "/health", timeout=5).status
            )
        finally:
            await process.stop()
        return process.description, process.returncode, status

    description, code, health = asyncio.run(main())
    assert health == 200
    assert description.startswith("simulated (org/model-1B: none on nvidia-l4:"), description
    assert code == 0


@pytest.mark.parametrize(
    ("extra", "error", "words"),
    [
        (["--simulated-gpu=nvidia-nope"], LocalStackError, "exited with status 2"),
        (["--inject=crash-on-start"], LocalStackError, "torch.OutOfMemoryError"),
        (["--engine=transformers", "--quantization=fp8"], EngineError, ""),
    ],
    ids=["bad-input", "crash-on-start", "engine-refused"],
)
def test_a_process_that_never_listens_is_an_error_with_its_words(
    extra: list[str], error: type[Exception], words: str
) -> None:
    process = ServerProcess([*BASE, *extra], "m-nf4-0")
    with pytest.raises(error) as caught:
        asyncio.run(process.start())
    assert words in str(caught.value)
    assert process.returncode in (1, 2)
