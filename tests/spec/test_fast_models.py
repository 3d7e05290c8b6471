"""The committed fast copy of the spec models is the one the generator writes from them now.

:mod:`controlplane.spec.fast_models` is generated from :mod:`controlplane.spec.models` by
:mod:`controlplane.spec.fastgen` (``make fast-models``): a model changed without regenerating it
fails here, before ``canaryctl validate``'s fast path could accept what the models refuse
(issue 41). The generator refuses what it cannot copy (the probe below), never copies it loosely.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, Field, field_validator

from controlplane.spec import fastgen
from controlplane.spec.fast import FastObject, Invalid
from controlplane.spec.fast_models import build_MetricSpec, build_ModelCanary


def test_the_committed_fast_copy_is_the_generated_one() -> None:
    committed = fastgen.TARGET.read_text(encoding="utf-8")
    assert committed == fastgen.generate(), "run `make fast-models` and commit the result"


def test_the_fast_copy_holds_every_model() -> None:
    from controlplane.spec import fast_models

    generated = {name for name, value in vars(fast_models).items() if isinstance(value, type)}
    models = {cls.__name__ for cls in fastgen._model_classes()}
    assert len(models) == 29
    assert models <= generated


def test_a_fast_object_is_light_and_immutable() -> None:
    metric = build_MetricSpec({"name": "latency", "builtin": "ttft"})
    assert isinstance(metric, FastObject)
    assert not hasattr(metric, "__dict__")
    assert metric.quantile_or_default == 0.95  # the models' behaviour mixin
    with pytest.raises(AttributeError):
        metric.name = "other"  # type: ignore[misc]
    with pytest.raises(Invalid):
        build_MetricSpec({"name": "latency", "builtin": "ttft", "bogus": 1})
    with pytest.raises(Invalid):
        build_ModelCanary([])


def test_the_generator_refuses_what_it_cannot_copy() -> None:
    """A validator the generator does not know (here a ``field_validator`` method) stops it."""

    class Odd(BaseModel):
        model_config = {"strict": True, "extra": "forbid"}
        size: Annotated[int, Field(ge=0)]

        @field_validator("size")
        @classmethod
        def _even(cls, value: int) -> int:
            return value

    with pytest.raises(NotImplementedError, match="validator"):
        fastgen._Writer().model(Odd)
