"""``controlplane.pairing.pairer``: the user's answer from the chosen variant, pairs on the side.

The upstreams here answer as vLLM 0.32.0 does (the shapes ``answer_of`` reads, checked against
the real engine in ``tests/serving/test_vllm_cpu_quantized.py``, which also runs this pairer in
front of it): each has its own greedy answer per prompt, so the pair's scores are known.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from support.pairs import CANDIDATE, STABLE, Upstream, choice

from controlplane.analysis.quality import answer_of, score
from controlplane.pairing.__main__ import main
from controlplane.pairing.pairer import Pairer
from controlplane.pairing.sampling import Limits
from controlplane.spec.models import SessionSpec

Scenario = Callable[[Pairer, Upstream, Upstream, aiohttp.ClientSession], Awaitable[None]]


def run(scenario: Scenario, **options: Any) -> None:
    async def main() -> None:
        stable, candidate = Upstream("stable", STABLE), Upstream("candidate", CANDIDATE)
        for name, value in options.pop("upstreams", {}).items():
            setattr(
                stable if name.startswith("stable") else candidate, name.split("_", 1)[1], value
            )
        await stable.start()
        await candidate.start()
        pairer = Pairer(stable.url, candidate.url, seed=1, **options)
        await pairer.start()
        try:
            async with aiohttp.ClientSession() as http:
                await scenario(pairer, stable, candidate, http)
        finally:
            await pairer.stop()
            await stable.stop()
            await candidate.stop()

    asyncio.run(main())


async def ask(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(url + "/v1/completions", json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def outcomes(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    found = {}
    for line in text.splitlines():
        if line.startswith("controlplane_pairer_pairs_total{"):
            label, value = line.split("} ")
            found[label.split('"')[1]] = float(value)
    return found


def test_each_port_answers_from_its_variant_and_both_answer_the_pair() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        user = {"model": "m", "prompt": "Hello", "temperature": 0.8, "max_tokens": 200}
        code, headers, body = await ask(http, pairer.url("candidate"), user)
        assert code == 200
        assert headers["x-served"] == "candidate"
        assert json.loads(body)["choices"][0]["text"] == "Hi here!"
        code, headers, body = await ask(http, pairer.url("stable"), {**user, "prompt": "Bye"})
        assert code == 200
        assert headers["x-served"] == "stable"
        await pairer.settled()
        # each got the user's requests it answered as sent, and each pair's request once:
        # greedy, with logprobs, at most 64 tokens
        assert user in candidate.seen
        assert user not in stable.seen
        assert {**user, "prompt": "Bye"} in stable.seen
        paired = {**user, "temperature": 0, "max_tokens": 64, "logprobs": 5}
        assert stable.seen.count(paired) == 1
        assert candidate.seen.count(paired) == 1
        async with http.get(pairer.url("stable") + "/pairs") as r:
            page = await r.json()
        assert [(p["seq"], p["servedBy"]) for p in page["pairs"]] == [
            (1, "candidate"),
            (2, "stable"),
        ]
        want = score(
            answer_of(choice(STABLE["Hello"], 5)), answer_of(choice(CANDIDATE["Hello"], 5))
        )
        first = page["pairs"][0]
        assert (first["agreement"], first["kl"], first["exact"]) == (
            want.agreement,
            want.kl,
            want.exact,
        )
        assert 0 < want.agreement < 1
        assert want.kl > 0
        assert page["pairs"][1]["agreement"] == 1.0
        assert page["pairs"][1]["exact"] is True
        assert await outcomes(http, pairer.url("candidate")) == {"scored": 2.0}

    run(scenario)


@pytest.mark.parametrize("keep", [False, True])
def test_no_request_or_answer_text_is_kept_unless_asked(keep: bool) -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        user = {"model": "m", "prompt": "Hello", "max_tokens": 200}
        await ask(http, pairer.url("stable"), user)
        await pairer.settled()
        async with http.get(pairer.url("stable") + "/pairs") as r:
            (plain,) = (await r.json())["pairs"]
        async with http.get(pairer.url("stable") + "/pairs?kept=1") as r:
            (pair,) = (await r.json())["pairs"]
        assert "kept" not in plain  # the page the judge reads holds no text
        assert "Hello" not in json.dumps(plain)
        if not keep:
            assert pair == plain
            return
        paired = {**user, "temperature": 0, "max_tokens": 64, "logprobs": 5}
        assert pair["kept"] == {
            "request": paired,
            "stable": answer_of(choice(STABLE["Hello"], 5)).text,
            "candidate": answer_of(choice(CANDIDATE["Hello"], 5)).text,
        }
        assert pair["kept"]["stable"] != pair["kept"]["candidate"]

    run(scenario, keep_prompts=keep)


def test_a_streamed_answer_streams_through_and_its_pair_is_one_whole_answer() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        user = {"model": "m", "prompt": "Hello", "stream": True}
        code, headers, body = await ask(http, pairer.url("stable"), user)
        assert code == 200
        assert headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in body.decode().split("\n\n") if line]
        assert events[-1] == "data: [DONE]"
        assert len(events) == 4
        await pairer.settled()
        assert all("stream" not in seen for seen in candidate.seen)
        assert pairer.journal.last == 1

    run(scenario)


def test_what_is_not_a_completions_request_is_proxied_and_never_paired() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        async with http.get(pairer.url("candidate") + "/v1/models") as r:
            assert (await r.json())["data"][0]["id"] == "candidate"
        async with http.post(pairer.url("stable") + "/v1/completions", data=b"not json") as r:
            assert r.status == 500  # the upstream's own answer to it
        await pairer.settled()
        assert await outcomes(http, pairer.url("stable")) == {"unpaired": 2.0}
        assert pairer.journal.last == 0

    run(scenario)


def test_a_variant_that_does_not_answer_the_pair_fails_it_and_the_user_is_served() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        code, _, body = await ask(http, pairer.url("stable"), {"model": "m", "prompt": "Bye"})
        assert code == 200
        assert json.loads(body)["choices"][0]["text"] == "See you"
        await pairer.settled()
        assert pairer.journal.last == 0
        assert await outcomes(http, pairer.url("stable")) == {"failed": 1.0}

    run(scenario, upstreams={"candidate_status": 500})


def test_pairs_beyond_the_concurrency_are_not_made() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        body = {"model": "m", "prompt": "Bye"}
        candidate.hold = asyncio.Event()  # the first pair stays in flight until it is set
        for _ in range(3):
            code, _, _ = await ask(http, pairer.url("stable"), body)
            assert code == 200  # the user is answered while the pair waits
        candidate.hold.set()
        await pairer.settled()
        await ask(http, pairer.url("stable"), body)  # the slot is free again
        await pairer.settled()
        assert await outcomes(http, pairer.url("stable")) == {"scored": 2.0, "busy": 2.0}

    run(scenario, concurrency=1)


def test_a_conversation_is_paired_once_by_its_session_header() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        body = {"model": "m", "prompt": "Hello"}
        for key in ("c1", "c1", "c2", "c1"):
            await ask(http, pairer.url("stable"), body, {"X-Session-Id": key})
        await ask(http, pairer.url("candidate"), body)
        await pairer.settled()
        assert await outcomes(http, pairer.url("stable")) == {"scored": 3.0, "repeat": 2.0}

    run(scenario, session=SessionSpec(header="x-session-id"))


def test_the_cap_per_minute_is_held() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        for _ in range(4):
            await ask(http, pairer.url("stable"), {"model": "m", "prompt": "Bye"})
        await pairer.settled()
        assert await outcomes(http, pairer.url("stable")) == {"scored": 2.0, "capped": 2.0}

    run(scenario, limits=Limits(per_minute=2))


def test_the_pairs_page_refuses_bad_numbers_and_a_dead_variant_is_a_503() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        for query in ("after=x", "after=-1", "limit=0", "limit=10001"):
            async with http.get(pairer.url("stable") + "/pairs?" + query) as r:
                assert r.status == 400, query
                assert "error" in await r.json()
        await candidate.stop()
        code, _, body = await ask(http, pairer.url("candidate"), {"model": "m", "prompt": "Bye"})
        assert code == 503
        assert "candidate is unreachable" in json.loads(body)["error"]["message"]

    run(scenario)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "0"], "rate must be in (0, 1]"),
        (["--per-minute", "0"], "per_minute must be at least 1"),
        (["--concurrency", "0"], "--concurrency and --keep must be at least 1"),
        (["--session-header", "a", "--session-cookie", "b"], "not allowed with argument"),
    ],
)
def test_the_command_refuses_bad_flags_with_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--stable", "http://s", "--candidate", "http://c", *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_pair_carries_the_users_credentials_to_both_variants() -> None:
    async def scenario(
        pairer: Pairer, stable: Upstream, candidate: Upstream, http: aiohttp.ClientSession
    ) -> None:
        auth = {"Authorization": "Bearer t0k", "Accept": "text/event-stream"}
        await ask(http, pairer.url("stable"), {"model": "m", "prompt": "Bye"}, auth)
        await pairer.settled()
        assert len(stable.headers) == 2  # the user's request and the pair's
        assert len(candidate.headers) == 1
        for got in (*stable.headers, *candidate.headers):
            assert got["Authorization"] == "Bearer t0k"
            assert got["Content-Type"] == "application/json"
        assert candidate.headers[0].get("Accept") != "text/event-stream"

    run(scenario)
