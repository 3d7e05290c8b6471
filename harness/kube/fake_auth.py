"""TokenReview and SubjectAccessReview answered the way kube-apiserver answers them, in memory.

Owns the authentication and authorization half of :class:`~harness.kube.fake.FakeKube`:

- **TokenReview** (``authentication.k8s.io/v1``): bearer tokens registered with
  :meth:`Reviews.add_token` map to a user (``username``, ``uid``, ``groups``; every authenticated
  user is also in ``system:authenticated``, as on a real server); any other token answers
  ``status.authenticated: false`` with an ``error``.
- **SubjectAccessReview** (``authorization.k8s.io/v1``): evaluated like the RBAC authorizer over
  the Role / RoleBinding / ClusterRole / ClusterRoleBinding objects stored in the fake
  (``rbac.authorization.k8s.io/v1``): subjects ``User``, ``Group`` and ``ServiceAccount``
  (``system:serviceaccount:NS:NAME``), rules matched on ``apiGroups``, ``resources`` (``*`` and
  ``resource/subresource``), ``verbs`` and ``resourceNames``; members of ``system:masters`` may do
  everything. ``status.allowed`` with ``status.reason`` naming the binding and role that allowed
  it (the RBAC authorizer's wording), or ``allowed: false`` with a reason saying what was asked.

Both kinds are create-only and never stored (as on a real server); malformed specs are the
server's ``422 Invalid``. Pure functions of the request and the stored objects; called by
:meth:`FakeKube.create` under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import KubeError

Obj = dict[str, Any]

AUTHENTICATION_API = "authentication.k8s.io/v1"
AUTHORIZATION_API = "authorization.k8s.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"
REVIEW_KINDS: frozenset[tuple[str, str]] = frozenset(
    {(AUTHENTICATION_API, "TokenReview"), (AUTHORIZATION_API, "SubjectAccessReview")}
)
AUTHENTICATED_GROUP = "system:authenticated"
MASTERS_GROUP = "system:masters"


@dataclass(frozen=True)
class TokenUser:
    """Who a registered bearer token authenticates as."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()


@dataclass
class Reviews:
    """The registered tokens; RBAC objects are read from the store on each review."""

    tokens: dict[str, TokenUser] = field(default_factory=dict)

    def add_token(
        self, token: str, username: str, *, uid: str = "", groups: Iterable[str] = ()
    ) -> None:
        self.tokens[token] = TokenUser(username, uid, tuple(groups))

    def revoke_token(self, token: str) -> None:
        self.tokens.pop(token, None)

    def answer(self, review: Obj, stored: Iterable[Obj]) -> Obj:
        """The review with its ``status`` filled in (``stored``: every object of the fake)."""
        if review.get("kind") == "TokenReview":
            return self._token_review(review)
        return subject_access_review(review, stored)

    def _token_review(self, review: Obj) -> Obj:
        spec = review.get("spec")
        token = spec.get("token") if isinstance(spec, dict) else None
        if not isinstance(token, str) or not token:
            raise KubeError("422 Invalid: TokenReview.authentication.k8s.io: spec.token: Required")
        user = self.tokens.get(token)
        result = _review_shell(review)
        if user is None:
            result["status"] = {
                "authenticated": False,
                "user": {},
                "error": "invalid bearer token, token lookup failed",
            }
            return result
        groups = [*user.groups]
        if AUTHENTICATED_GROUP not in groups:
            groups.append(AUTHENTICATED_GROUP)
        result["status"] = {
            "authenticated": True,
            "user": {"username": user.username, "uid": user.uid, "groups": groups},
            "audiences": list(spec.get("audiences") or []),  # type: ignore[union-attr]
        }
        return result


def _review_shell(review: Obj) -> Obj:
    shell = {k: v for k, v in review.items() if k != "status"}
    shell["metadata"] = {"creationTimestamp": None, **(review.get("metadata") or {})}
    return shell


# --- SubjectAccessReview -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ask:
    user: str
    groups: tuple[str, ...]
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str

    def describe(self) -> str:
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if self.group:
            what += f".{self.group}"
        where = f' in namespace "{self.namespace}"' if self.namespace else " cluster-wide"
        named = f' named "{self.name}"' if self.name else ""
        return f'user "{self.user}" cannot {self.verb} {what}{named}{where}'


def subject_access_review(review: Obj, stored: Iterable[Obj]) -> Obj:
    """Answer a SubjectAccessReview with the RBAC rules in ``stored``."""
    ask = _read_ask(review)
    result = _review_shell(review)
    if MASTERS_GROUP in ask.groups:
        result["status"] = {"allowed": True, "reason": f'allowed by group "{MASTERS_GROUP}"'}
        return result
    objects = list(stored)
    roles = {
        (o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"]): o
        for o in objects
        if o.get("apiVersion") == RBAC_API and o.get("kind") in ("Role", "ClusterRole")
    }
    for binding in objects:
        if binding.get("apiVersion") != RBAC_API:
            continue
        kind, meta = binding.get("kind"), binding.get("metadata", {})
        if kind == "ClusterRoleBinding":
            binding_ns = ""
        elif kind == "RoleBinding" and ask.namespace and meta.get("namespace") == ask.namespace:
            binding_ns = ask.namespace
        else:
            continue
        subject = _matching_subject(binding.get("subjects") or [], ask, meta.get("namespace"))
        if subject is None:
            continue
        ref = binding.get("roleRef") or {}
        role_kind = ref.get("kind")
        role_ns = binding_ns if role_kind == "Role" else ""
        role = roles.get((role_kind, role_ns, ref.get("name")))
        if role is None or not any(_rule_allows(r, ask) for r in role.get("rules") or []):
            continue
        where = (
            f'"{meta.get("name")}"'
            if kind == "ClusterRoleBinding"
            else (f'"{meta.get("name")}/{binding_ns}"')
        )
        result["status"] = {
            "allowed": True,
            "reason": f'RBAC: allowed by {kind} {where} of {role_kind} "{ref.get("name")}" '
            f"to {subject}",
        }
        return result
    result["status"] = {"allowed": False, "reason": f"RBAC: {ask.describe()}: no rule allows it"}
    return result


def _read_ask(review: Obj) -> _Ask:
    spec = review.get("spec")
    if not isinstance(spec, dict):
        raise KubeError("422 Invalid: SubjectAccessReview.authorization.k8s.io: spec: Required")
    attrs = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if (attrs is None) == (non_resource is None):
        raise KubeError(
            "422 Invalid: SubjectAccessReview.authorization.k8s.io: spec.resourceAttributes: "
            "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        )
    user, groups = spec.get("user") or "", spec.get("groups") or []
    if not user and not groups:
        raise KubeError(
            "422 Invalid: SubjectAccessReview.authorization.k8s.io: spec.user: "
            "at least one of user or group must be specified"
        )
    if attrs is None:  # non-resource URLs: only system:masters (handled by the caller)
        attrs = {"verb": str((non_resource or {}).get("verb") or ""), "resource": ""}
    if not isinstance(attrs, dict) or not isinstance(groups, list):
        raise KubeError("422 Invalid: SubjectAccessReview.authorization.k8s.io: malformed spec")
    return _Ask(
        user=str(user),
        groups=tuple(str(g) for g in groups),
        verb=str(attrs.get("verb") or ""),
        group=str(attrs.get("group") or ""),
        resource=str(attrs.get("resource") or ""),
        subresource=str(attrs.get("subresource") or ""),
        namespace=str(attrs.get("namespace") or ""),
        name=str(attrs.get("name") or ""),
    )


def _matching_subject(
    subjects: Sequence[Mapping[str, Any]], ask: _Ask, binding_ns: str | None
) -> str | None:
    for subject in subjects:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == ask.user:
            return f'User "{name}"'
        if kind == "Group" and name in ask.groups:
            return f'Group "{name}"'
        if kind == "ServiceAccount":
            ns = subject.get("namespace") or binding_ns
            if ask.user == f"system:serviceaccount:{ns}:{name}":
                return f'ServiceAccount "{name}/{ns}"'
    return None


def _rule_allows(rule: Mapping[str, Any], ask: _Ask) -> bool:
    if not ask.resource:
        return False
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    verbs = rule.get("verbs") or []
    names = rule.get("resourceNames") or []
    wanted = ask.resource + (f"/{ask.subresource}" if ask.subresource else "")
    return (
        ("*" in groups or ask.group in groups)
        and ("*" in resources or wanted in resources)
        and ("*" in verbs or ask.verb in verbs)
        and (not names or ask.name in names)
    )


def grant_objects(
    name: str,
    *,
    verbs: Sequence[str],
    resources: Sequence[str],
    api_groups: Sequence[str] = ("",),
    namespace: str | None = None,
    users: Sequence[str] = (),
    groups: Sequence[str] = (),
    service_accounts: Sequence[tuple[str, str]] = (),
) -> list[Obj]:
    """A Role + RoleBinding (``namespace`` given) or ClusterRole + ClusterRoleBinding granting
    ``verbs`` on ``resources`` to the subjects: what an operator would ``kubectl apply``."""
    subjects: list[Obj] = [
        *({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u} for u in users),
        *({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g} for g in groups),
        *({"kind": "ServiceAccount", "namespace": ns, "name": n} for ns, n in service_accounts),
    ]
    meta: Obj = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    role_kind = "ClusterRole" if namespace is None else "Role"
    role: Obj = {
        "apiVersion": RBAC_API,
        "kind": role_kind,
        "metadata": dict(meta),
        "rules": [
            {"apiGroups": list(api_groups), "resources": list(resources), "verbs": list(verbs)}
        ],
    }
    binding: Obj = {
        "apiVersion": RBAC_API,
        "kind": f"{role_kind}Binding",
        "metadata": dict(meta),
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
    }
    return [role, binding]
