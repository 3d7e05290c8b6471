"""Optional parts of the install, checked before a test sets anything up.

The ``local-cpu`` extra (torch, transformers, bitsandbytes, torchao, GuideLLM) is optional: the
base install passes without it (``tests/test_base_install.py``, ``make test-fast EXTRAS=``). A test
that needs it carries :func:`local_cpu`, a ``skipif`` mark that pytest evaluates before any
fixture, so a run without the extra never starts a costly stack only to skip the test inside it.
The modules are found with :func:`importlib.util.find_spec`, never imported (torch takes seconds).
Whether such a skip is allowed is decided by :mod:`support.skips`.
"""

from __future__ import annotations

import importlib.util

import pytest

LOCAL_CPU = ("torch", "transformers", "bitsandbytes", "torchao")
MISSING_EXTRA = "the local-cpu extra is not installed"
"""How every such skip's reason begins: :mod:`support.skips` allows it by this prefix."""


def missing(names: tuple[str, ...] = LOCAL_CPU) -> list[str]:
    """The modules of ``names`` this interpreter cannot import (found, not imported)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def skip_reason(names: tuple[str, ...]) -> str:
    return f"{MISSING_EXTRA} (no {', '.join(names)})"


def local_cpu(*names: str) -> pytest.MarkDecorator:
    """Skip, before setup, when a module of the local-cpu extra (all of them by default) is
    missing."""
    absent = missing(names or LOCAL_CPU)
    return pytest.mark.skipif(bool(absent), reason=skip_reason(tuple(absent)))


VLLM_MISSING = "the real vLLM engine is not installed (make vllm)"


def vllm_cpu() -> pytest.MarkDecorator:
    """Skip, before any fixture, where ``make vllm`` has not installed the real engine; under
    ``CI=true`` that skip fails (:mod:`support.skips`): ``make test`` installs it first."""
    from harness import vllm_cpu as engine

    return pytest.mark.skipif(engine.python() is None, reason=VLLM_MISSING)
