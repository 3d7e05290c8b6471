"""The runtime of the spec's fast copy: the base of its light objects and its one exception.

Owns :class:`FastObject` (what every class of the generated :mod:`controlplane.spec.fast_models`
derives from: ``__slots__`` attributes, immutable, ``model_dump`` and ``model_fields_set`` as
the pydantic models have them, so the rules that read a canary run unchanged on either) and
:class:`Invalid` (what a generated builder raises for any input the pydantic models would not
accept as they are: the caller then asks the models, which say why). Called by the generated
module and by :func:`controlplane.validation.fast_file`. Pure; imports no pydantic (issue 41).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, ClassVar

from controlplane.errors import ControlPlaneError

Serializer = Callable[[Any], Any]


class Invalid(ControlPlaneError):
    """The input is not one the fast copy accepts (a wrong type, a bound crossed, an unknown
    key...). It carries no message on purpose: the pydantic models are the only source of them,
    and the caller asks them (:func:`controlplane.validation.fast_file`)."""


class FastObject:
    """A light, immutable object with the attributes (names, values, defaults) of one pydantic
    model of :mod:`controlplane.spec.models`.

    ``_FIELDS`` (set by the generated subclass): ``(attribute, alias, serializer or None)`` of
    every field, in the model's order. ``_extra``: the unknown keys a model with
    ``extra="allow"`` keeps (``ObjectMeta``), else None. ``_fields_set``: the fields the input
    gave (pydantic's ``model_fields_set``)."""

    __slots__ = ("_extra", "_fields_set")
    _extra: dict[str, Any] | None
    _fields_set: set[str]
    _FIELDS: ClassVar[tuple[tuple[str, str, Serializer | None], ...]] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def model_fields_set(self) -> set[str]:
        """The fields the input gave, by attribute name (as pydantic's)."""
        given: set[str] = self._fields_set
        return set(given)

    def model_dump(
        self, *, by_alias: bool = False, exclude: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The object as plain data, as pydantic's ``model_dump`` (python mode) gives it for
        the same arguments: nested objects as dicts, defaults included, each field's serializer
        applied (a duration as its text)."""
        out: dict[str, Any] = {}
        for name, alias, serializer in self._FIELDS:
            if exclude is not None and name in exclude:
                continue
            value = getattr(self, name)
            if serializer is not None and value is not None:
                out[alias if by_alias else name] = serializer(value)
            else:
                out[alias if by_alias else name] = _dump(value, by_alias)
        if self._extra:
            out.update(self._extra)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FastObject) or type(other) is not type(self):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # lists inside: pydantic's are unhashable too

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _a, _s in self._FIELDS)
        return f"{type(self).__name__}({shown})"


def _dump(value: object, by_alias: bool) -> object:
    if isinstance(value, FastObject):
        return value.model_dump(by_alias=by_alias)
    if isinstance(value, list):
        return [_dump(item, by_alias) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item, by_alias) for key, item in value.items()}
    return value


def new(cls: type[FastObject], fields_set: set[str], extra: dict[str, Any] | None) -> Any:
    """An empty ``cls`` whose attributes the generated builder sets with :func:`put`."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "_fields_set", fields_set)
    object.__setattr__(obj, "_extra", extra)
    return obj


put = object.__setattr__
"""Set an attribute of an object :func:`new` made (the objects are immutable afterwards)."""
