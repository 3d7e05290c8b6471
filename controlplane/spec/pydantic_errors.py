"""Readable messages for pydantic's validation errors on a ModelCanary.

Owns the translation of a :class:`pydantic.ValidationError` into :class:`Problem` objects with the
camelCase field path users wrote, the YAML line, and a message a person can act on ("unknown field
'wieght'; did you mean 'weight'?", "expected an integer, got string '5'"). Called by
:mod:`controlplane.spec.load`. Pure.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from controlplane.errors import Problem
from controlplane.spec.document import Document
from controlplane.spec.models import ModelCanary
from controlplane.spec.paths import Loc, format_path
from controlplane.spec.words import describe, did_you_mean

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_PATTERN_WORDS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "a DNS label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$": "a DNS name: "
    "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    r"^https?://\S+$": "an http:// or https:// URL",
    r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$": "an HTTP header name (no spaces or separators)",
}


def strip_optional(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to ``X`` (a model class, a list type, any
    other type); a union of several types is returned as it is."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that the mapping at ``loc`` is validated as, or None."""
    current: Any = ModelCanary
    for seg in loc:
        current = strip_optional(current)
        if isinstance(seg, int):
            if typing.get_origin(current) is not list:
                return None
            current = typing.get_args(current)[0]
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = next(
            (f for name, f in current.model_fields.items() if (f.alias or name) == seg), None
        )
        if info is None:
            return None
        current = info.annotation
    current = strip_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def field_names(model: type[BaseModel]) -> list[str]:
    """The names users write for ``model``'s fields (aliases)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _message(error: Any, loc: Loc) -> str:
    kind: str = error["type"]
    value = error.get("input")
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "missing":
        return f"required field {loc[-1]!r} is missing" if loc else "required field is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        parent = model_at(loc[:-1])
        hint = did_you_mean(name, field_names(parent)) if parent is not None else ""
        return f"unknown field {name!r}{hint}"
    if kind in _TYPE_WORDS:
        quote = ""
        if kind == "string_type" and isinstance(value, int | float | bool):
            quote = " (quote it to make it a string)"
        return f"expected {_TYPE_WORDS[kind]}, got {describe(value)}{quote}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"must be one of {expected}; got {describe(value)}{hint}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        words = _PATTERN_WORDS.get(pattern, f"a string matching {pattern}")
        return f"must be {words}; got {describe(value)}"
    msg = str(error["msg"])
    for prefix, replacement in (
        ("Input should be", "must be"),
        ("String should", "must"),
        ("List should", "must"),
        ("Value should", "must"),
    ):
        if msg.startswith(prefix):
            msg = replacement + msg[len(prefix) :]
            break
    msg = msg.replace(" after validation", "")
    if not (kind.startswith("too_") and isinstance(value, list | str)):
        msg += f"; got {describe(value)}"
    return msg


def problems_from_validation_error(exc: ValidationError, doc: Document) -> list[Problem]:
    """One :class:`Problem` per pydantic error, with camelCase path, line and a clear message."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(seg for seg in error["loc"] if isinstance(seg, str | int))
        problems.append(doc.problem(format_path(loc), _message(error, loc)))
    return problems
