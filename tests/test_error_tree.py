"""One error tree: every exception class defined anywhere in controlplane -- and in the test
harness beside it, ``harness/`` -- derives from :class:`controlplane.errors.ControlPlaneError`
and is drawn in docs/architecture.md, "The error tree".

The walk imports every module of both packages (``pkgutil.walk_packages``) and looks at the classes
each defines itself, so a new ``class Oops(Exception)`` in any module -- or one that derives from a
library's exception only -- fails here, and so does a new class left out of the drawn tree.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import controlplane
import harness
from controlplane.errors import ControlPlaneError


@functools.cache
def exception_classes() -> dict[str, type[BaseException]]:
    """``module.Name`` -> class, for every exception class a controlplane or harness module
    defines (the walk imports both packages once per test process)."""
    found: dict[str, type[BaseException]] = {}
    infos = [
        *pkgutil.walk_packages(controlplane.__path__, "controlplane."),
        *pkgutil.walk_packages(harness.__path__, "harness."),
    ]
    for info in infos:
        if info.name.endswith(".__main__"):
            continue  # running it is its import: `python -m harness`
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
            ):
                found[f"{info.name}.{name}"] = obj
    return found


def test_the_walk_sees_the_errors_of_every_layer() -> None:
    names = {qualified.rsplit(".", 1)[1] for qualified in exception_classes()}
    # errors.py's own, one raised in spec, one in analysis, one in local, the harness's: the walk
    # is not empty
    assert {
        "SpecError",
        "UnsupportedSchema",
        "UnknownEngineVersion",
        "EngineError",
        "KubeSetupError",
    } <= names


def test_every_exception_class_is_a_control_plane_error() -> None:
    escaped = {
        qualified: [base.__name__ for base in cls.__mro__[1:]]
        for qualified, cls in exception_classes().items()
        if not issubclass(cls, ControlPlaneError)
    }
    assert escaped == {}


def test_every_exception_class_is_drawn_in_the_tree() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    section = page[page.index("## The error tree") :]
    start = section.index("```\nControlPlaneError\n")
    tree = section[start : section.index("\n```", start + 3)]
    drawn = set(re.findall(r"[├└]── (\w+)", tree)) | {"ControlPlaneError"}
    defined = {qualified.rsplit(".", 1)[1] for qualified in exception_classes()}
    assert defined - drawn == set()
    assert drawn - defined == set()  # the drawing names no class that is gone


def test_value_error_stays_a_second_base_where_callers_catch_value_error() -> None:
    from controlplane.promql.contract import UnknownEngineVersion
    from controlplane.spec.crd import UnsupportedSchema

    for cls in (UnknownEngineVersion, UnsupportedSchema):
        assert issubclass(cls, ControlPlaneError)
        assert issubclass(cls, ValueError)
