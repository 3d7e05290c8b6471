"""What an object is to a FakeKube, and the checks every write passes before it is stored.

Owns :data:`Key` (how the store names an object), :func:`wire_copy` (a deep copy through JSON,
what crossing the wire does, and fails on), :func:`describe` (an object as the server's errors
name it) and :func:`normalize`: the admission kube-apiserver does on every write before
anything else (a JSON object with apiVersion, kind and an RFC 1123 name; string labels and
annotations; finalizers a list of strings; ownerReferences with uid and name; ``generateName``
filled in on create; no namespace on cluster-scoped kinds). Pure; called by
:mod:`harness.kube.fake` and :mod:`harness.kube.fake_watch`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Set
from typing import Any

from controlplane.errors import KubeError
from controlplane.kube.client import Obj

Key = tuple[str, str, str | None, str]
"""(apiVersion, kind, namespace or None when cluster-scoped, name)."""

SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
"""Metadata only the server writes."""
SERVER_META_ALL = (*SERVER_META, "deletionGracePeriodSeconds", "resourceVersion")

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def wire_copy(value: Any) -> Any:
    """A deep copy through JSON: what crossing the wire would do (and fail on)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise KubeError(f"400 BadRequest: object is not JSON-serializable: {exc}") from exc


def clone(obj: Obj) -> Obj:
    """:func:`wire_copy` of an object."""
    result: Obj = wire_copy(obj)
    return result


def describe(key: Key) -> str:
    """``Deployment.apps/v1 "ns/name"``, as the server's messages name an object."""
    api_version, kind, namespace, name = key
    where = f"{namespace}/{name}" if namespace else name
    return f'{kind}.{api_version} "{where}"'


def normalize(obj: Obj, cluster_kinds: Set[str], *, creating: bool = False) -> Obj:
    """A JSON deep copy of ``obj``, checked for what every write needs."""
    new = wire_copy(obj)
    if not isinstance(new, dict):
        raise KubeError("400 BadRequest: an object must be a JSON object")
    for field in ("apiVersion", "kind"):
        if not isinstance(new.get(field), str) or not new[field]:
            raise KubeError(f"400 BadRequest: object has no {field}")
    meta = new.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise KubeError("400 BadRequest: metadata must be an object")
    if creating and not meta.get("name") and meta.get("generateName"):
        meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise KubeError(f"400 BadRequest: {new['kind']} has no metadata.name")
    if len(name) > 253 or not _NAME.match(name):
        raise KubeError(
            f"422 Invalid: {new['kind']} name {name!r} is not a lowercase RFC 1123 subdomain"
        )
    if new["kind"] in cluster_kinds:
        meta.pop("namespace", None)
    _check_metadata(meta)
    return new


def _check_metadata(meta: dict[str, Any]) -> None:
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            raise KubeError(f"422 Invalid: metadata.{field} values must be strings")
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        raise KubeError("422 Invalid: metadata.finalizers must be a list of strings")
    owners = meta.get("ownerReferences")
    if owners is not None and (
        not isinstance(owners, list)
        or not all(isinstance(o, dict) and o.get("uid") and o.get("name") for o in owners)
    ):
        raise KubeError("422 Invalid: every ownerReference needs a uid and a name")
