"""``canaryctl profile --endpoint``'s first question, :func:`controlplane.sweep.endpoint.check`:
what the network lost is asked again, what the endpoint answered is taken at its word.

A real HTTP server on loopback answers as each test's script says
(:func:`harness.servers.loopback.scripted`); a refused connection is a loopback port nothing
listens on.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from controlplane.sweep.endpoint import CHECK_TRIES, EndpointError, check
from harness.servers.loopback import Script, scripted, serving

MODELS = json.dumps({"data": [{"id": "llama"}]}).encode()


def checked(steps: list[str]) -> tuple[str | EndpointError, int]:
    """What :func:`check` gave (the engine's name, or its error) and the requests it sent."""
    script = Script(steps, MODELS)
    with serving(scripted(script)) as url:
        try:
            engine, _ = asyncio.run(check(url, "llama", pause_s=0.0))
        except EndpointError as error:
            return error, script.seen
    return engine, script.seen


@pytest.mark.parametrize(
    ("steps", "answered"),
    [
        (["drop", "200"], 2),
        (["503", "502", "200"], 3),
    ],
    ids=["dropped", "proxy-busy"],
)
def test_what_the_network_lost_is_asked_again(steps: list[str], answered: int) -> None:
    # /version and /health follow on the same server: 404 says neither is there
    engine, seen = checked([*steps, "404", "404"])
    assert engine == "openai-compatible"
    assert seen == answered + 2


def test_three_tries_then_the_proxys_answer_is_the_error() -> None:
    error, seen = checked(["504"] * CHECK_TRIES)
    assert isinstance(error, EndpointError)
    assert str(error).endswith("/v1/models answered HTTP 504")
    assert seen == CHECK_TRIES


@pytest.mark.parametrize("status", ["500", "401", "404"])
def test_what_the_endpoint_answered_is_not_asked_again(status: str) -> None:
    error, seen = checked([status, "200"])
    assert isinstance(error, EndpointError)
    assert str(error).endswith(f"/v1/models answered HTTP {status}")
    assert seen == 1


def test_a_port_that_refuses_is_unreachable_after_the_tries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(EndpointError, match="cannot reach the endpoint"):
        asyncio.run(check(f"http://127.0.0.1:{port}", "llama", pause_s=0.0))
