"""The generator of the spec's fast copy: :mod:`controlplane.spec.models` -> ``fast_models.py``.

Owns the translation of the pydantic models into plain Python: for each model a ``__slots__``
class with the same attribute names and the model's own methods and properties (their source
copied: ``variant()``, ``candidate_is_stable()``, ``quantile_or_default``...), and a builder
that accepts exactly what the model accepts as it is: the fields under their aliases (and
names, where ``populate_by_name``), strict types, ``Literal`` values, ``ge``/``gt``/``le``/``lt``,
lengths, patterns, unknown keys refused or kept (``extra``), defaults and default factories, and
the models' own Before/After validator functions (``parse_duration``, ``checked_git_url``...),
called from where they live. Anything else raises :class:`~controlplane.spec.fast.Invalid`,
never a message: the models stay the one source of shapes, defaults and messages, and the
caller asks them whenever the fast copy refuses (:func:`controlplane.validation.fast_text`).

Run ``make fast-models`` (``python -m controlplane.spec.fastgen``) after changing the models;
``tests/spec/test_fast_models.py`` regenerates the module and fails when the committed one
differs. A construct the generator does not know (a new kind of validator, a union of two
models...) stops it with :class:`NotImplementedError`, never a silently looser copy.
Called by that command and that test only (it imports pydantic; the generated module does not).
"""

from __future__ import annotations

import builtins
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic.fields import FieldInfo

from controlplane.spec import constants, models

_NONE = object()

TARGET = Path(__file__).with_name("fast_models.py")
HEADER = '''"""GENERATED from :mod:`controlplane.spec.models` by :mod:`controlplane.spec.fastgen`:
do not edit. ``make fast-models`` rewrites it; tests/spec/test_fast_models.py checks it is current.

The spec's fast copy: light ``__slots__`` objects with the models' attribute names and defaults,
and ``build_<Model>(data)`` functions that accept what the models accept and raise
:class:`~controlplane.spec.fast.Invalid` for anything else. Called by
:func:`controlplane.validation.fast_text` (``canaryctl validate``'s path for a valid file, issue
41). Imports no pydantic.
"""
'''


class _Shape:
    """A type with what pydantic hangs on it: constraints, validators, a serializer."""

    def __init__(self, tp: Any, metadata: list[Any]) -> None:
        self.constraints: dict[str, Any] = {}
        self.before: list[Callable[..., Any]] = []
        self.after: list[Callable[..., Any]] = []
        self.serializer: Callable[..., Any] | None = None
        self._take(metadata)
        while get_origin(tp) is typing.Annotated:
            base, *meta = get_args(tp)
            self._take(meta)
            tp = base
        self.tp = tp

    def _take(self, metadata: list[Any]) -> None:
        for item in metadata:
            if isinstance(item, FieldInfo):
                self._take(list(item.metadata))
            elif isinstance(item, BeforeValidator):
                self.before.insert(0, item.func)  # the outermost runs first
            elif isinstance(item, AfterValidator):
                self.after.append(item.func)
            elif isinstance(item, PlainSerializer):
                self.serializer = item.func
            elif isinstance(item, WithJsonSchema):
                continue
            elif isinstance(item, annotated_types.Gt):
                self.constraints["gt"] = item.gt
            elif isinstance(item, annotated_types.Ge):
                self.constraints["ge"] = item.ge
            elif isinstance(item, annotated_types.Lt):
                self.constraints["lt"] = item.lt
            elif isinstance(item, annotated_types.Le):
                self.constraints["le"] = item.le
            elif isinstance(item, annotated_types.MinLen):
                self.constraints["min_length"] = item.min_length
            elif isinstance(item, annotated_types.MaxLen):
                self.constraints["max_length"] = item.max_length
            elif type(item).__name__ == "_PydanticGeneralMetadata" and set(vars(item)) == {
                "pattern"
            }:
                self.constraints["pattern"] = item.pattern
            else:
                raise NotImplementedError(f"fastgen: unknown metadata {item!r}")


def _model_classes() -> list[type[BaseModel]]:
    """Every model of the module, in the order they are defined."""
    return [
        value
        for value in vars(models).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == models.__name__
        and value.model_fields
    ]


class _Writer:
    def __init__(self) -> None:
        self.imports: dict[str, set[str]] = {}
        self.helpers: list[str] = []
        self.seen: dict[str, str] = {}
        self.count = 0

    def ref(self, thing: Any) -> str:
        """The name of a function or class, imported from where it lives."""
        if thing is str:
            return "str"
        module, name = thing.__module__, thing.__qualname__
        if name == "<lambda>" or "." in name or module == models.__name__:
            raise NotImplementedError(
                f"fastgen: {module}.{name} must be a plain function outside the models module"
            )
        if module == "builtins":
            return str(name)
        self.imports.setdefault(module, set()).add(name)
        return str(name)

    def value(self, shape: _Shape) -> str:
        """The name of a helper that checks and converts one value of ``shape``."""
        body = "\n".join(self._body(shape))
        if body not in self.seen:  # one helper per distinct check (every DNS label shares one)
            self.count += 1
            self.seen[body] = f"_v{self.count}"
            self.helpers.append(f"def {self.seen[body]}(v: Any) -> Any:\n{body}\n")
        return self.seen[body]

    def _body(self, shape: _Shape) -> Iterator[str]:
        tp, cons = shape.tp, shape.constraints
        for func in shape.before:
            yield f"    v = _call({self.ref(func)}, v)"
        origin, args = get_origin(tp), get_args(tp)
        if origin in (typing.Union, types.UnionType):
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1 or len(args) != 2 or shape.before or shape.after:
                raise NotImplementedError(f"fastgen: only X | None unions, got {tp}")
            inner = _Shape(rest[0], [])
            inner.constraints = {**cons, **inner.constraints}
            yield "    if v is None:"
            yield "        return None"
            yield f"    return {self.value(inner)}(v)"
            return
        yield from self._core(tp, origin, args, cons)
        for func in shape.after:
            yield f"    v = _call({self.ref(func)}, v)"
        yield "    return v"

    def _core(
        self, tp: Any, origin: Any, args: tuple[Any, ...], cons: dict[str, Any]
    ) -> Iterator[str]:
        if tp is Any:
            return
        if origin is Literal:
            if not all(type(a) is str for a in args):
                raise NotImplementedError(f"fastgen: Literal of non-strings {tp}")
            yield f"    if type(v) is not str or v not in {tuple(args)!r}:"
            yield "        raise Invalid"
        elif tp is bool:
            yield "    if type(v) is not bool:"
            yield "        raise Invalid"
        elif tp is int:
            yield "    if type(v) is not int:"
            yield "        raise Invalid"
        elif tp is float:
            yield "    if type(v) is int:"
            yield "        v = float(v)"
            yield "    elif type(v) is not float:"
            yield "        raise Invalid"
        elif tp is str:
            yield "    if type(v) is not str:"
            yield "        raise Invalid"
        elif origin is list:
            yield "    if type(v) is not list:"
            yield "        raise Invalid"
        elif origin is dict:
            yield "    if type(v) is not dict:"
            yield "        raise Invalid"
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            if cons:
                raise NotImplementedError(f"fastgen: constraints on a model {tp}")
            yield f"    return build_{tp.__name__}(v)"
            return
        elif isinstance(tp, type):
            yield f"    if not isinstance(v, {self.ref(tp)}):"
            yield "        raise Invalid"
        else:
            raise NotImplementedError(f"fastgen: unknown type {tp}")
        yield from self._constraints(tp, cons)
        if origin is list:
            item = self.value(_Shape(args[0], []))
            yield f"    v = [{item}(x) for x in v]"
        elif origin is dict:
            key, val = self.value(_Shape(args[0], [])), self.value(_Shape(args[1], []))
            yield f"    v = {{{key}(k): {val}(x) for k, x in v.items()}}"

    def _constraints(self, tp: Any, cons: dict[str, Any]) -> Iterator[str]:
        for kind, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if kind in cons:
                yield f"    if not (v {op} {cons[kind]!r}):"  # NaN fails every bound, as there
                yield "        raise Invalid"
        if "min_length" in cons:
            yield f"    if len(v) < {cons['min_length']!r}:"
            yield "        raise Invalid"
        if "max_length" in cons:
            yield f"    if len(v) > {cons['max_length']!r}:"
            yield "        raise Invalid"
        if "pattern" in cons:
            if tp is not str:
                raise NotImplementedError(f"fastgen: a pattern on {tp}")
            # pydantic's regex engine (Rust) has no Python-style `$` before a final newline:
            # refuse every newline, which none of the models' patterns matches
            yield f"    if '\\n' in v or _re.search({cons['pattern']!r}, v) is None:"
            yield "        raise Invalid"

    def model(self, cls: type[BaseModel]) -> str:
        """The class and the builder of ``cls``."""
        config = cls.model_config
        if not config.get("strict"):
            raise NotImplementedError(f"fastgen: {cls.__name__} is not strict")
        extra = config.get("extra")
        if extra not in ("forbid", "allow"):
            raise NotImplementedError(f"fastgen: {cls.__name__} extra={extra!r}")
        hooks = cls.__pydantic_decorators__
        if any(
            getattr(hooks, kind)
            for kind in (
                "validators",
                "field_validators",
                "root_validators",
                "field_serializers",
                "model_serializers",
                "model_validators",
                "computed_fields",
            )
        ):
            raise NotImplementedError(
                f"fastgen: {cls.__name__} has validator or serializer methods: use Annotated "
                "Before/AfterValidator with a plain function"
            )
        by_name = bool(config.get("populate_by_name"))
        if any(not issubclass(base, BaseModel) for base in cls.__bases__):
            raise NotImplementedError(f"fastgen: {cls.__name__} has a base that is no model")
        private = dict(cls.__private_attributes__)
        slots = [*cls.model_fields, *private]
        fields_meta = []
        lines = [f"def build_{cls.__name__}(data: Any) -> {cls.__name__}:"]
        lines.append("    if type(data) is not dict:")
        lines.append("        raise Invalid")
        keys: list[str] = []
        for name, info in cls.model_fields.items():
            alias = info.alias or name
            keys.append(alias)
            if by_name and alias != name:
                keys.append(name)
        if extra == "forbid":
            lines.append(f"    if not _KEYS_{cls.__name__}.issuperset(data):")
            lines.append("        raise Invalid")
            lines.append("    extra = None")
        else:
            lines.append(
                f"    extra = {{k: x for k, x in data.items() if k not in _KEYS_{cls.__name__}}}"
            )
        lines.append("    given: set[str] = set()")
        lines.append(f"    obj: {cls.__name__} = new({cls.__name__}, given, extra)")
        for name, info in cls.model_fields.items():
            alias = info.alias or name
            shape = _Shape(info.annotation, list(info.metadata))
            serializer = _serializer(shape)
            fields_meta.append(
                f"        ({name!r}, {alias!r}, {self.ref(serializer) if serializer else None}),"
            )
            check = self.value(shape)
            lines.append(f"    if {alias!r} in data:")
            if by_name and alias != name:
                lines.append(f"        if {name!r} in data:")
                lines.append("            raise Invalid")
            lines.append(f"        put(obj, {name!r}, {check}(data[{alias!r}]))")
            lines.append(f"        given.add({name!r})")
            if by_name and alias != name:
                lines.append(f"    elif {name!r} in data:")
                lines.append(f"        put(obj, {name!r}, {check}(data[{name!r}]))")
                lines.append(f"        given.add({name!r})")
            lines.append("    else:")
            if info.is_required():
                lines.append("        raise Invalid")
            else:
                lines.append(f"        put(obj, {name!r}, {self._default(cls, name, info)})")
        for name, attr in private.items():
            lines.append(f"    put(obj, {name!r}, {attr.default!r})")
        lines.append("    return obj")
        doc = f"Fast copy of :class:`controlplane.spec.models.{cls.__name__}`."
        head = [
            f"class {cls.__name__}(FastObject):",
            f'    """{doc}"""',
            "",
            f"    __slots__ = {tuple(slots)!r}",
            "    _FIELDS = (",
            *fields_meta,
            "    )",
            "",
            f"    def __new__(cls, **data: Any) -> {cls.__name__}:",
            f'        """As ``{cls.__name__}(**fields)`` makes the model: checked, defaults in."""',
            f"        return build_{cls.__name__}(data)",
        ]
        for name, info in cls.model_fields.items():
            head.append(f"    {name}: {_annotation(info.annotation)}")
        for name in private:
            head.append(f"    {name}: Any")
        head.extend(self.methods(cls))
        key_line = f"_KEYS_{cls.__name__} = frozenset({sorted(set(keys))!r})"
        return "\n".join(head) + "\n\n\n" + key_line + "\n\n\n" + "\n".join(lines) + "\n"

    def methods(self, cls: type[BaseModel]) -> Iterator[str]:
        """The model's own methods and properties, their source copied as it is: they read only
        the fields (and constants of :mod:`controlplane.spec.constants`), which the fast objects
        have under the same names."""
        for name, member in vars(cls).items():
            func = member.fget if isinstance(member, property) else member
            if not isinstance(func, types.FunctionType) or name.startswith("__"):
                continue
            if func.__module__ != models.__name__:
                continue  # pydantic's own (model_post_init, for the private attributes)
            if func.__qualname__ != f"{cls.__name__}.{name}":
                raise NotImplementedError(f"fastgen: {cls.__name__}.{name} is not a plain method")
            for used in func.__code__.co_names:
                if used in vars(models) and not hasattr(builtins, used):
                    self._constant(used)
            source = textwrap.dedent(inspect.getsource(func))  # with its decorator
            yield ""
            yield textwrap.indent(source, "    ").rstrip()

    def _constant(self, name: str) -> None:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, BaseModel) and value.model_fields:
            return  # a model: its fast class, same name, same module (called as the model is)
        if isinstance(value, type) or getattr(constants, name, _NONE) is not value:
            raise NotImplementedError(
                f"fastgen: a method reads {name}, which is not in controlplane.spec.constants"
            )
        self.imports.setdefault(constants.__name__, set()).add(name)

    def _default(self, cls: type[BaseModel], name: str, info: FieldInfo) -> str:
        factory = info.default_factory
        if factory is None:
            default = info.default
            if not isinstance(default, str | int | float | bool | type(None)):
                raise NotImplementedError(f"fastgen: default {default!r} of {cls.__name__}.{name}")
            return repr(default)
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            return f"build_{factory.__name__}({{}})"
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, list | dict) and all(isinstance(x, str | int | float) for x in value):
            return repr(value)  # a literal: a new one for each object, as a factory makes
        if type(value).__module__ != "builtins" and repr(value).startswith(type(value).__name__):
            self.ref(type(value))
            return repr(value)  # an immutable value (a Duration), the factory's result
        raise NotImplementedError(f"fastgen: default factory of {cls.__name__}.{name}")


def _serializer(shape: _Shape) -> Callable[..., Any] | None:
    if shape.serializer is not None:
        return shape.serializer
    args = get_args(shape.tp)
    if get_origin(shape.tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _Shape(rest[0], []).serializer if len(rest) == 1 else None
    return None


def _annotation(tp: Any) -> str:
    """The annotation of a field in the class body (documentation: the builder checks)."""
    tp = _Shape(tp, []).tp
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return "Any"
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _annotation(a) for a in args)
    if origin is list:
        return f"list[{_annotation(args[0])}]"
    if origin is dict:
        return f"dict[{_annotation(args[0])}, {_annotation(args[1])}]"
    if isinstance(tp, type):
        return tp.__name__
    raise NotImplementedError(f"fastgen: unknown type {tp}")


def generate() -> str:
    """The text of ``fast_models.py`` for the models as they are now."""
    writer = _Writer()
    classes = [writer.model(cls) for cls in _model_classes()]
    writer.imports.setdefault("controlplane.spec.fast", set()).update(
        {"FastObject", "Invalid", "new", "put"}
    )
    imports = [
        "from __future__ import annotations",
        "",
        "import re as _re",
        "from typing import Any, Literal",
        "",
    ]
    for module in sorted(writer.imports):
        names = ", ".join(sorted(writer.imports[module]))
        imports.append(f"from {module} import {names}")
    runtime = '''

def _call(func: Any, v: Any) -> Any:
    """A model's own validator function; its ValueError means "not accepted"."""
    try:
        return func(v)
    except (ValueError, TypeError, AssertionError):
        raise Invalid from None
'''
    body = "\n\n".join(classes)
    helpers = "\n\n".join(writer.helpers)
    return HEADER + "\n" + "\n".join(imports) + "\n" + runtime + "\n\n" + body + "\n\n" + helpers


def main() -> int:
    """Write :data:`TARGET`, formatted as ruff formats it (the check compares that)."""
    TARGET.write_text(generate(), encoding="utf-8")
    print(f"wrote {TARGET.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
