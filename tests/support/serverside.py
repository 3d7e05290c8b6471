"""Server-side apply with strict field validation on the real API server, and a precise read-back.

``apply_strict`` sends one object the way ``kubectl apply --server-side --validate=strict`` does
(``PATCH ...?fieldManager=...&fieldValidation=Strict`` with ``application/apply-patch+yaml``) into
the given namespace, then reads it back with a GET; :func:`lost_fields` lists every field that was
sent and is missing or changed in the read-back (server-set metadata and defaults the server adds
are extra fields, not losses). A refusal raises :class:`Refused` with the server's own message.
Used by the tests that hold every rendered object and manifest against the pinned upstream CRDs.
"""

from __future__ import annotations

import copy
import json
import urllib.error
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from harness.cluster.kubeapi import LoopbackCluster

FIELD_MANAGER = "controlplane-strict-test"
APPLY = "application/apply-patch+yaml"


class Refused(AssertionError):
    """The API server answered an apply with an error status."""

    def __init__(self, what: str, code: int, status: Any) -> None:
        message = status.get("message") if isinstance(status, dict) else status
        super().__init__(f"{what}: HTTP {code}: {message}")
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Resource:
    plural: str
    namespaced: bool


_discovery: dict[tuple[str, str], dict[str, Resource]] = {}


def resource(cluster: LoopbackCluster, api_version: str, kind: str) -> Resource:
    """The REST resource serving ``kind`` in ``api_version``, from the server's discovery."""
    key = (cluster.server, api_version)
    if key not in _discovery:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        listing = cluster.request("GET", path)
        _discovery[key] = {
            r["kind"]: Resource(r["name"], bool(r["namespaced"]))
            for r in listing["resources"]
            if "/" not in r["name"]
        }
    found = _discovery[key].get(kind)
    if found is None:
        raise AssertionError(f"the API server serves no {kind} in {api_version}")
    return found


def collection_path(cluster: LoopbackCluster, obj: dict[str, Any]) -> str:
    res = resource(cluster, obj["apiVersion"], obj["kind"])
    group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    scope = f"/namespaces/{obj['metadata']['namespace']}" if res.namespaced else ""
    return f"{group}{scope}/{res.plural}"


def object_path(cluster: LoopbackCluster, obj: dict[str, Any]) -> str:
    return f"{collection_path(cluster, obj)}/{obj['metadata']['name']}"


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def in_namespace(cluster: LoopbackCluster, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A copy of ``obj`` moved to ``namespace`` (cluster-scoped objects are left as they are)."""
    moved = copy.deepcopy(obj)
    if resource(cluster, obj["apiVersion"], obj["kind"]).namespaced:
        moved["metadata"]["namespace"] = namespace
    return moved


def apply_strict(
    cluster: LoopbackCluster,
    obj: dict[str, Any],
    *,
    dry_run: bool = False,
) -> Any:
    """Server-side apply ``obj`` with ``fieldValidation=Strict``; the server's answer."""
    query = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    path = f"{object_path(cluster, obj)}?{urlencode(query)}"
    try:
        return cluster.request("PATCH", path, obj, content_type=APPLY)
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            status: Any = json.loads(body)
        except ValueError:
            status = body
        raise Refused(describe(obj), exc.code, status) from None


def read_back(cluster: LoopbackCluster, obj: dict[str, Any]) -> Any:
    return cluster.request("GET", object_path(cluster, obj))


def lost_fields(sent: Any, got: Any, path: str = "") -> list[str]:
    """Every path of ``sent`` that ``got`` lacks or holds a different value at.

    Maps: each key sent must be there with an equal value (extra keys are the server's: defaults,
    metadata). Lists: the same length, item by item (the server neither adds nor drops items of
    what we render). Scalars: equal, with ``1 == 1.0`` (JSON has one number type).
    """
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [f"{path or '.'}: sent a map, read back {type(got).__name__}"]
        lost: list[str] = []
        for key, value in sent.items():
            where = f"{path}.{key}"
            if key not in got:
                lost.append(f"{where}: missing")
            else:
                lost += lost_fields(value, got[key], where)
        return lost
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [f"{path}: sent {sent!r}, read back {got!r}"]
        return [f for i, item in enumerate(sent) for f in lost_fields(item, got[i], f"{path}[{i}]")]
    same = sent == got and (isinstance(sent, bool) == isinstance(got, bool))
    return [] if same else [f"{path}: sent {sent!r}, read back {got!r}"]


def apply_and_compare(
    cluster: LoopbackCluster, obj: dict[str, Any], *, dry_run: bool = False
) -> list[str]:
    """Apply ``obj`` strictly and read it back: the fields lost, prefixed with the object.

    ``dry_run``: the server's answer is the object as it would be stored (nothing is written;
    for objects the cluster itself depends on, such as our CRD)."""
    answer = apply_strict(cluster, obj, dry_run=dry_run)
    lost = lost_fields(obj, answer)
    if not dry_run:
        lost += lost_fields(obj, read_back(cluster, obj))
    return [f"{describe(obj)} {f}" for f in dict.fromkeys(lost)]
