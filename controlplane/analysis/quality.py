"""How much a candidate's answer differs from the stable's to the same request (pure).

Owns the scores of one *pair*: the same prompt, sent with the same parameters, greedy decoding
and ``logprobs`` to both variants. A quantized model that answers worse shows it here long
before latency, errors or a business KPI do:

- :func:`agreement`: the share of the stable's greedy tokens the candidate repeats before the
  first token where they differ (1.0: the same answer). After that token the two continue from
  different prefixes, so nothing later is compared.
- :func:`mean_kl`: the mean per-token KL divergence ``KL(stable || candidate)`` of the
  next-token distributions at each position both answered from the same prefix (the common
  prefix and the first divergence), estimated from the top-k logprobs each engine returns
  (:func:`token_kl`, its bias in its docstring), capped at :data:`KL_CAP`.
- :func:`exact_match`: whether the two answers are the same text, for short answers.

:func:`paired_request` turns a user's request into the one both variants answer for a pair;
:func:`answer_of` reads either answer as vLLM 0.32.0 returns it: a completions choice
(``CompletionLogProbs`` in ``vllm/entrypoints/openai/completion/protocol.py``: ``tokens``,
``token_logprobs``, ``top_logprobs`` of ``{token: logprob}``) or a chat completions choice
(``ChatCompletionLogProbs`` in ``vllm/entrypoints/openai/chat_completion/protocol.py``: ``content``,
a list of ``{token, logprob, top_logprobs: [{token, logprob}]}``). The sequential test of the
scores is :mod:`controlplane.analysis.sequential.mean_eprocess`. See docs/judges.md, "Quality:
paired answers".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KL_CAP = 10.0
"""The most one pair's mean KL counts (nats): a bounded score is what the sequential test needs,
and a pair beyond it is broken either way (10 nats: the candidate gives the stable's token
about e^-10 of the stable's probability)."""
FLOOR = 1e-12
TOP_K = 5
"""Logprobs asked at each position of a paired answer: within vLLM's ``--max-logprobs``
default (20 in vLLM 0.32.0, ``vllm/config/model.py``, ``ModelConfig.max_logprobs``), and the
tokens that hold nearly all of a small model's mass."""
MAX_TOKENS = 64
"""The most tokens a paired answer may take: the comparison stops at the first divergence, and
a pair costs both variants a request."""
UNKNOWN_LOGPROB = -9999.0
"""vLLM's logprob for a token it gives none (``ChatCompletionLogProb.logprob``'s default)."""
SAMPLING = ("stream", "stream_options", "n", "best_of", "echo", "logprobs", "top_logprobs")
"""A user's request fields a paired request replaces: one answer, whole, with the logprobs the
scores read; ``temperature`` 0 makes it greedy (vLLM then ignores ``top_p``, ``top_k`` and
``seed``). What shapes the distribution itself (penalties, ``logit_bias``, ``stop``) is kept:
both variants answer the same request."""


@dataclass(frozen=True)
class Answer:
    """One variant's greedy answer: its text, its tokens and, at each position, the top-k
    next-token logprobs the engine returned (the chosen token among them)."""

    text: str
    tokens: tuple[str, ...]
    top: tuple[Mapping[str, float], ...]


@dataclass(frozen=True)
class PairScore:
    """The scores of one pair (:func:`score`)."""

    agreement: float
    kl: float
    exact: bool
    compared: int
    """Positions compared by :func:`mean_kl` (0: neither answered a token)."""


def paired_request(
    body: Mapping[str, Any], *, top_k: int = TOP_K, max_tokens: int = MAX_TOKENS
) -> dict[str, Any]:
    """The request both variants answer for one pair: ``body``, an OpenAI completions
    (``prompt``) or chat completions (``messages``) request, with greedy decoding, one whole
    answer, ``top_k`` logprobs at each position and at most ``max_tokens`` tokens (fewer when
    the user asked for fewer); every other field as the user sent it. :class:`ValueError` for
    a body that is neither."""
    chat = "messages" in body
    if not chat and "prompt" not in body:
        raise ValueError("a paired request needs a completions prompt or chat messages")
    out = {k: v for k, v in body.items() if k not in SAMPLING}
    limits = (body.get("max_tokens"), body.get("max_completion_tokens"))
    asked = [v for v in limits if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    out.pop("max_completion_tokens", None)
    out.update(temperature=0, max_tokens=min([max_tokens, *asked]))
    out.update({"logprobs": True, "top_logprobs": top_k} if chat else {"logprobs": top_k})
    return out


def answer_of(choice: Mapping[str, Any]) -> Answer:
    """An :class:`Answer` from one ``choices[]`` entry of an OpenAI completions or chat
    completions response with logprobs asked (:func:`paired_request`); a position without top
    logprobs (vLLM gives None for the prompt's) keeps its token's own logprob alone.
    :class:`ValueError` when the choice has no logprobs."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, Mapping):
        raise ValueError("the answer has no logprobs: ask with logprobs=K")
    if "message" in choice:
        return _chat_answer(choice, logprobs)
    tokens = tuple(str(t) for t in logprobs.get("tokens") or [])
    own = list(logprobs.get("token_logprobs") or [])
    tops = list(logprobs.get("top_logprobs") or [])
    top: list[Mapping[str, float]] = []
    for i, token in enumerate(tokens):
        found = tops[i] if i < len(tops) and isinstance(tops[i], Mapping) else {}
        entry = {str(k): float(v) for k, v in found.items()}
        if token not in entry and i < len(own) and own[i] is not None:
            entry[token] = float(own[i])
        top.append(entry)
    return Answer(str(choice.get("text") or ""), tokens, tuple(top))


def _chat_answer(choice: Mapping[str, Any], logprobs: Mapping[str, Any]) -> Answer:
    """A chat completions choice: each ``content`` entry is one token with its own logprob and
    its top alternatives."""
    message = choice.get("message") or {}
    tokens, top = [], []
    for entry in logprobs.get("content") or []:
        token = str(entry.get("token", ""))
        alternatives = {
            str(a["token"]): float(a["logprob"]) for a in entry.get("top_logprobs") or []
        }
        alternatives.setdefault(token, float(entry.get("logprob", UNKNOWN_LOGPROB)))
        tokens.append(token)
        top.append(alternatives)
    return Answer(str(message.get("content") or ""), tuple(tokens), tuple(top))


def first_divergence(stable: Answer, candidate: Answer) -> int:
    """The first position where the two answers' tokens differ (the shorter one's length when
    one is a prefix of the other)."""
    n = min(len(stable.tokens), len(candidate.tokens))
    for i in range(n):
        if stable.tokens[i] != candidate.tokens[i]:
            return i
    return n


def agreement(stable: Answer, candidate: Answer) -> float:
    """The share of the stable's tokens the candidate repeats before they first differ; 1.0
    when both are the same (both empty included). A candidate that stops early, or goes on
    after the stable stopped, agrees on the common part only."""
    longest = max(len(stable.tokens), len(candidate.tokens))
    return 1.0 if longest == 0 else first_divergence(stable, candidate) / longest


def exact_match(stable: Answer, candidate: Answer) -> bool:
    """The same text, but for whitespace at either end."""
    return stable.text.strip() == candidate.text.strip()


def token_kl(p_log: Mapping[str, float], q_log: Mapping[str, float]) -> float:
    """``KL(P || Q)`` in nats of two next-token distributions known by their top-k logprobs.

    The vocabulary is coarsened into the tokens of ``P``'s top-k and one bin for all others: a
    coarsening can only lose divergence (the data-processing inequality), so with both
    distributions known on those bins this is a lower bound of the true KL, exact when the top-k
    hold all the mass. ``Q``'s probability of a token of ``P``'s top-k that is not in its own
    top-k is unknown but at most ``Q``'s smallest listed probability: it gets that, the most it
    can have, which keeps a token the candidate merely ranks lower from reading as a large
    divergence (and can make the estimate lower still). Both "others" bins take the mass the
    listed tokens leave (at least :data:`FLOOR`)."""
    if not p_log:
        return 0.0
    p = {t: math.exp(v) for t, v in p_log.items()}
    q_known = {t: math.exp(v) for t, v in q_log.items()}
    q_floor = min(q_known.values()) if q_known else FLOOR
    q = {t: q_known.get(t, q_floor) for t in p}
    p_rest = max(FLOOR, 1.0 - sum(p.values()))
    q_rest = max(FLOOR, 1.0 - sum(q.values()))
    kl = sum(pt * math.log(pt / max(FLOOR, q[t])) for t, pt in p.items() if pt > 0)
    kl += p_rest * math.log(p_rest / q_rest)
    return max(0.0, kl)


def mean_kl(stable: Answer, candidate: Answer) -> tuple[float, int]:
    """The mean of :func:`token_kl` over the positions both answered from the same prefix (up
    to and including the first where they differ), capped at :data:`KL_CAP`, and how many
    positions that is (0 and 0.0 when neither answered)."""
    upto = first_divergence(stable, candidate)
    n = min(upto + 1, len(stable.top), len(candidate.top))
    if n == 0:
        return 0.0, 0
    total = sum(token_kl(stable.top[i], candidate.top[i]) for i in range(n))
    return min(KL_CAP, total / n), n


def score(stable: Answer, candidate: Answer) -> PairScore:
    """Every score of one pair."""
    kl, compared = mean_kl(stable, candidate)
    return PairScore(
        agreement=agreement(stable, candidate),
        kl=kl,
        exact=exact_match(stable, candidate),
        compared=compared,
    )


def disagreement(scores: Sequence[PairScore]) -> list[float]:
    """``1 - agreement`` of each pair: the score in ``[0, 1]`` the ``agreement`` metric tests."""
    return [1.0 - s.agreement for s in scores]
