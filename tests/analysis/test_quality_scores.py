"""The scores of one pair of answers (controlplane/analysis/quality.py): agreement up to the first
divergence, the top-k KL estimate and its bias, exact match, vLLM's completions and chat
logprobs, and the request both variants answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controlplane.analysis.quality import (
    KL_CAP,
    Answer,
    agreement,
    answer_of,
    disagreement,
    exact_match,
    first_divergence,
    mean_kl,
    paired_request,
    score,
    token_kl,
)


def log(dist: dict[str, float]) -> dict[str, float]:
    return {t: math.log(p) for t, p in dist.items()}


def exact_kl(p: dict[str, float], q: dict[str, float]) -> float:
    return sum(pt * math.log(pt / q[t]) for t, pt in p.items() if pt > 0)


def answer(tokens: str, tops: list[dict[str, float]] | None = None) -> Answer:
    toks = tuple(tokens.split())
    top = tuple(log(t) for t in tops) if tops else tuple({t: 0.0} for t in toks)
    return Answer(" ".join(toks), toks, top)


def test_agreement_counts_the_tokens_before_the_first_divergence() -> None:
    stable = answer("the order ships on monday")
    assert agreement(stable, answer("the order ships on monday")) == 1.0
    assert first_divergence(stable, answer("the order ships tuesday")) == 3
    assert agreement(stable, answer("the order ships tuesday")) == pytest.approx(3 / 5)
    assert agreement(stable, answer("a different answer entirely")) == 0.0
    # stopping early or running on agrees on the common part only
    assert agreement(stable, answer("the order")) == pytest.approx(2 / 5)
    assert agreement(answer("the order"), stable) == pytest.approx(2 / 5)
    assert agreement(answer(""), answer("")) == 1.0
    assert exact_match(stable, answer("the order ships on monday"))
    assert not exact_match(stable, answer("the order ships tuesday"))


def test_token_kl_is_exact_when_the_top_k_hold_all_the_mass() -> None:
    p = {"a": 0.7, "b": 0.2, "c": 0.1}
    q = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert token_kl(log(p), log(q)) == pytest.approx(exact_kl(p, q))
    assert token_kl(log(p), log(p)) == pytest.approx(0.0, abs=1e-9)
    assert token_kl({}, log(q)) == 0.0


def test_token_kl_from_the_top_k_is_a_lower_estimate_of_the_whole_vocabulary_s() -> None:
    """Random next-token distributions over 50 tokens, each side's top 5 kept: the coarsened
    estimate never exceeds the true KL when the candidate lists every token of the stable's top
    5 (the data-processing inequality), and a token it ranks lower costs at most its own
    smallest listed probability."""
    rng = np.random.default_rng(7)
    vocab = [f"t{i}" for i in range(50)]
    for _ in range(200):
        p_all = dict(zip(vocab, rng.dirichlet(np.full(50, 0.3)), strict=True))
        noise = rng.dirichlet(np.full(50, 0.3))
        q_all = {t: 0.8 * p_all[t] + 0.2 * noise[i] for i, t in enumerate(vocab)}
        p_top = dict(sorted(p_all.items(), key=lambda kv: -kv[1])[:5])
        q_top = {t: q_all[t] for t in sorted(q_all, key=lambda t: -q_all[t])[:5]}
        q_top.update({t: q_all[t] for t in p_top})  # the candidate lists the stable's top 5
        got = token_kl(log(p_top), log(q_top))
        assert 0.0 <= got <= exact_kl(p_all, q_all) + 1e-9


def test_mean_kl_compares_the_common_prefix_and_the_first_divergence_only() -> None:
    same = [{"x": 0.9, "y": 0.1}, {"x": 0.9, "y": 0.1}]
    off = [{"x": 0.6, "y": 0.4}, {"y": 0.9, "x": 0.1}, {"z": 1.0}]
    stable = Answer("x x", ("x", "x"), tuple(log(t) for t in same))
    candidate = Answer("x y z", ("x", "y", "z"), tuple(log(t) for t in off))
    kl, n = mean_kl(stable, candidate)
    assert n == 2  # position 0 (same prefix) and 1 (the first divergence); 2 is not compared
    expected = (exact_kl(same[0], off[0]) + exact_kl(same[1], off[1])) / 2
    assert kl == pytest.approx(expected)
    got = score(stable, candidate)
    assert (got.agreement, got.exact, got.compared) == (pytest.approx(1 / 3), False, 2)
    assert disagreement([got]) == [pytest.approx(2 / 3)]


def test_a_broken_candidate_is_capped() -> None:
    stable = Answer("x", ("x",), ({"x": math.log(1 - 1e-9)},))
    broken = Answer("y", ("y",), ({"y": math.log(1 - 1e-9), "x": math.log(1e-9)},))
    assert mean_kl(stable, broken) == (KL_CAP, 1)


def test_vllm_completions_logprobs_are_read() -> None:
    choice = {
        "text": " Paris.",
        "logprobs": {
            "tokens": [" Paris", "."],
            "token_logprobs": [-0.1, -0.3],
            "top_logprobs": [{" Paris": -0.1, " Lyon": -2.5}, None],
            "text_offset": [0, 6],
        },
    }
    got = answer_of(choice)
    assert got.tokens == (" Paris", ".")
    assert got.top == ({" Paris": -0.1, " Lyon": -2.5}, {".": -0.3})
    assert got.text == " Paris."
    with pytest.raises(ValueError, match="logprobs=K"):
        answer_of({"text": "x"})


def test_vllm_chat_logprobs_are_read() -> None:
    """A chat completions choice as vLLM 0.32.0 returns it (``ChatCompletionLogProbs``)."""
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "Paris."},
        "logprobs": {
            "content": [
                {
                    "token": "Paris",
                    "logprob": -0.1,
                    "bytes": [80, 97, 114, 105, 115],
                    "top_logprobs": [
                        {"token": "Paris", "logprob": -0.1, "bytes": None},
                        {"token": "Lyon", "logprob": -2.5, "bytes": None},
                    ],
                },
                {"token": ".", "logprob": -0.3, "bytes": None, "top_logprobs": []},
            ]
        },
        "finish_reason": "stop",
    }
    got = answer_of(choice)
    assert got.tokens == ("Paris", ".")
    assert got.top == ({"Paris": -0.1, "Lyon": -2.5}, {".": -0.3})
    assert got.text == "Paris."
    with pytest.raises(ValueError, match="logprobs=K"):
        answer_of({"message": {"content": "x"}, "logprobs": None})


def test_a_paired_request_is_greedy_whole_and_asks_for_logprobs() -> None:
    chat = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.8,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 3,
        "max_completion_tokens": 500,
        "stop": ["\n"],
        "presence_penalty": 0.5,
    }
    got = paired_request(chat, top_k=4, max_tokens=64)
    assert got == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0,
        "top_p": 0.9,  # ignored by a greedy engine; the user's request otherwise
        "max_tokens": 64,
        "stop": ["\n"],
        "presence_penalty": 0.5,
        "logprobs": True,
        "top_logprobs": 4,
    }
    completion = {"model": "m", "prompt": "hi", "max_tokens": 8, "logprobs": 2, "echo": True}
    assert paired_request(completion) == {
        "model": "m",
        "prompt": "hi",
        "temperature": 0,
        "max_tokens": 8,  # the user's fewer tokens
        "logprobs": 5,
    }
    assert chat["stream"] is True  # the user's request is left as it was
    assert paired_request({"prompt": "x", "max_tokens": True})["max_tokens"] == 64
    with pytest.raises(ValueError, match="prompt or chat messages"):
        paired_request({"model": "m", "input": "x"})
