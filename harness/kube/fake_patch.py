"""The patch formats a FakeKube accepts, applied as kube-apiserver applies them. Pure.

Owns :func:`merge_patch` (RFC 7386 JSON merge patch), :func:`json_patch` (RFC 6902 JSON patch:
add, remove, replace, move, copy, test; errors are the 4xx :class:`~controlplane.errors.KubeError`
the server answers) and the field bookkeeping of server-side apply: :func:`deep_merge` (an apply
laid onto the stored object), :func:`leaf_paths` (the fields an apply sets, lists atomic) and
:func:`remove_path` (a field a manager stopped applying). Called by
:meth:`harness.kube.fake.FakeKube.patch` and :meth:`~harness.kube.fake.FakeKube.apply`,
and by tests/harness/test_fake_kube.py.
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.errors import KubeError
from controlplane.kube.client import Obj

FieldPath = tuple[str, ...]
"""A field of an object: ``("spec", "predictor", "model")``."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) applied to a copy of ``doc``.

    A failed ``test`` or a bad path raises :class:`KubeError` (the API server answers 422).
    """
    if not isinstance(operations, list):
        raise KubeError("400 BadRequest: a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise KubeError(f"422 Invalid: bad JSON patch operation {op!r}")
        kind, path = op.get("op"), _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise KubeError(f"422 Invalid: JSON patch {kind} at {op['path']} needs a value")
        if kind == "add":
            result = _ptr_add(result, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            result = _ptr_remove(result, path)[0]
        elif kind == "replace":
            result = _ptr_remove(result, path)[0]
            result = _ptr_add(result, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise KubeError(f"422 Invalid: JSON patch {kind} needs 'from'")
            source = _pointer(op["from"])
            if kind == "move":
                if path[: len(source)] == source and path != source:
                    raise KubeError("422 Invalid: cannot move a value into itself")
                result, value = _ptr_remove(result, source)
            else:
                value = copy.deepcopy(_ptr_get(result, source))
            result = _ptr_add(result, path, value)
        elif kind == "test":
            if _ptr_get(result, path) != op["value"]:
                raise KubeError(f"422 Invalid: JSON patch test failed at {op['path']}")
        else:
            raise KubeError(f"422 Invalid: unknown JSON patch op {kind!r}")
    return result


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise KubeError(f"422 Invalid: JSON pointer {text!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token.startswith("0") and token != "0"):
        raise KubeError(f"422 Invalid: bad array index {token!r}")
    index = int(token)
    if index > len(container) or (not for_add and index == len(container)):
        raise KubeError(f"422 Invalid: array index {index} out of range")
    return index


def _ptr_parent(doc: Any, path: list[str]) -> Any:
    node = doc
    for token in path[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} does not exist")
    return node


def _ptr_get(doc: Any, path: list[str]) -> Any:
    if not path:
        return doc
    parent, token = _ptr_parent(doc, path), path[-1]
    if isinstance(parent, dict) and token in parent:
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, for_add=False)]
    raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} does not exist")


def _ptr_add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, token = _ptr_parent(doc, path), path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, for_add=True), value)
    else:
        raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} has no container")
    return doc


def _ptr_remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        raise KubeError("422 Invalid: cannot remove the whole document")
    parent, token = _ptr_parent(doc, path), path[-1]
    if isinstance(parent, dict) and token in parent:
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, for_add=False))
    raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} does not exist")


def deep_merge(base: Obj, over: Obj) -> Obj:
    """``over``'s fields laid onto a copy of ``base``; maps merge, lists and scalars replace."""
    result = copy.deepcopy(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = deep_merge(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result


def leaf_paths(obj: Obj, prefix: FieldPath = ()) -> set[FieldPath]:
    """Paths of the fields an apply sets (lists are atomic, as with ``listType: atomic``)."""
    paths: set[FieldPath] = set()
    for name, value in obj.items():
        path = (*prefix, name)
        if path in {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}:
            continue
        if isinstance(value, dict) and value:
            paths |= leaf_paths(value, path)
        else:
            paths.add(path)
    return paths


def remove_path(obj: Obj, path: FieldPath) -> None:
    """Remove the field at ``path`` and the maps it leaves empty."""
    trail: list[tuple[Obj, str]] = []
    node: Any = obj
    for name in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(name), dict):
            return
        trail.append((node, name))
        node = node[name]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, name in reversed(trail):
        if parent[name] == {} and not (parent is obj and name == "metadata"):
            del parent[name]
