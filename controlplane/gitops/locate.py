"""Where a ModelCanary came from in git: repository, branch and the canary.yml holding it.

Owns the lookup order of write-back (spec, the git source's annotation, Argo CD's tracking) and
:func:`find_file`. An Argo CD Application's name from the canary's metadata is checked as a
Kubernetes name before it is read (a crafted tracking id could otherwise address a Secret).
See docs/git-writeback.md, "How the file is found".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from controlplane.errors import InvalidName, KubeError, WriteBackError
from controlplane.gitops.repo import GitRepo
from controlplane.gitops.yamledit import find_canary
from controlplane.kube.client import KubeClient, Ref
from controlplane.spec.models import API_GROUP, GitWriteBackSpec
from controlplane.spec.name_checks import check_label, check_subdomain

SOURCE_ANNOTATION = f"{API_GROUP}/source"
"""``<repo-url>#<path>@<branch>``: the file a resource was applied from (set by the git source)."""
ARGOCD_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGOCD_INSTANCE_LABEL = "app.kubernetes.io/instance"
ARGOCD_API_VERSION = "argoproj.io/v1alpha1"
DEFAULT_ARGOCD_NAMESPACE = "argocd"
YAML_SUFFIXES = (".yml", ".yaml")
_SHA = re.compile(r"^[0-9a-f]{40}$")

Origin = Literal["spec", "annotation", "argocd"]


@dataclass(frozen=True)
class Location:
    """A repository and where in it to look. ``branch`` None: the remote's default branch.
    ``path`` is a file, a directory to search, or None (search the whole repository)."""

    repo: str
    branch: str | None
    path: str | None
    origin: Origin


def format_source(repo: str, path: str, branch: str) -> str:
    """The value of :data:`SOURCE_ANNOTATION`."""
    return f"{repo}#{path}@{branch}"


def parse_source(value: str) -> tuple[str, str, str] | None:
    """``(repo, path, branch)`` of a :data:`SOURCE_ANNOTATION` value, or None when malformed."""
    repo, sep, rest = value.partition("#")
    if not sep or "@" not in rest:
        return None
    path, _, branch = rest.rpartition("@")
    if not repo or not path or not branch:
        return None
    return repo, path, branch


def locate(
    kube: KubeClient | None,
    obj: Mapping[str, Any],
    spec: GitWriteBackSpec | None,
    *,
    argocd_namespace: str = DEFAULT_ARGOCD_NAMESPACE,
) -> Location:
    """Where the canary ``obj`` lives in git (see the module docstring for the order).

    Raises :class:`WriteBackError` saying what was tried when nothing names a repository.
    """
    meta = obj.get("metadata") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    explicit_branch = spec.branch if spec is not None and spec.branch != "main" else None
    if spec is not None and spec.repo:
        return Location(spec.repo, spec.branch, spec.path, "spec")
    source = annotations.get(SOURCE_ANNOTATION)
    if source:
        parsed = parse_source(source)
        if parsed is None:
            raise WriteBackError(
                f"annotation {SOURCE_ANNOTATION} is not <repo-url>#<path>@<branch>: {source!r}"
            )
        repo, path, branch = parsed
        return Location(
            repo, explicit_branch or branch, spec.path if spec and spec.path else path, "annotation"
        )
    app = _argocd_app(meta, argocd_namespace)
    if app is not None:
        if kube is None:
            raise WriteBackError("reading an Argo CD Application needs a Kubernetes client")
        repo, path, revision = _from_application(kube, *app, str(meta.get("namespace") or ""))
        return Location(
            repo, explicit_branch or revision, spec.path if spec and spec.path else path, "argocd"
        )
    raise WriteBackError(
        "cannot tell which git repository holds this canary: set spec.gitWriteBack.repo (and "
        f"path), or apply it with the git source (annotation {SOURCE_ANNOTATION}) or Argo CD "
        f"(annotation {ARGOCD_TRACKING_ANNOTATION})"
    )


def _argocd_app(meta: Mapping[str, Any], default_namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of the tracking Application, or None; WriteBackError when they are no
    Kubernetes names (checked here, before anything reads the Application)."""
    tracking = (meta.get("annotations") or {}).get(ARGOCD_TRACKING_ANNOTATION)
    if tracking:
        app, where = str(tracking).split(":", 1)[0], f"annotation {ARGOCD_TRACKING_ANNOTATION}"
    else:
        app = str((meta.get("labels") or {}).get(ARGOCD_INSTANCE_LABEL) or "")
        where = f"label {ARGOCD_INSTANCE_LABEL}"
    if not app:
        return None
    namespace, sep, name = app.partition("_")
    if not sep:
        namespace, name = default_namespace, app
    try:
        check_label(namespace, "the Argo CD Application's namespace")
        check_subdomain(name, "the Argo CD Application's name")
    except InvalidName as exc:
        raise WriteBackError(f"{where} does not name an Argo CD Application: {exc}") from None
    return namespace, name


def _from_application(
    kube: KubeClient, namespace: str, name: str, canary_namespace: str
) -> tuple[str, str, str | None]:
    """The Application's git source, when it deploys into the canary's namespace: an annotation
    the canary's owner may write must not lead write-back into another team's repository."""
    try:
        app = kube.get(Ref(ARGOCD_API_VERSION, "Application", namespace, name))
    except KubeError as exc:
        raise WriteBackError(f"Argo CD Application {namespace}/{name}: {exc}") from None
    spec = app.get("spec") or {}
    destination = (spec.get("destination") or {}).get("namespace")
    if destination and destination != canary_namespace:
        raise WriteBackError(
            f"Argo CD Application {namespace}/{name} deploys into namespace {destination!r}, not "
            f"the canary's {canary_namespace!r}: it is not where this canary came from"
        )
    sources = [spec["source"]] if isinstance(spec.get("source"), dict) else []
    sources += [s for s in spec.get("sources") or [] if isinstance(s, dict)]
    git = [s for s in sources if s.get("repoURL") and not s.get("chart")]
    if not git:
        raise WriteBackError(f"Argo CD Application {namespace}/{name} has no git source")
    source = git[0]
    revision = str(source.get("targetRevision") or "").strip()
    if _SHA.match(revision):
        raise WriteBackError(
            f"Argo CD Application {namespace}/{name} tracks the fixed commit {revision}: "
            "there is no branch to write back to"
        )
    if revision in ("", "HEAD"):
        revision_or_none: str | None = None
    else:
        revision_or_none = revision.removeprefix("refs/heads/")
    path = str(source.get("path") or "").strip("/") or None
    return str(source["repoURL"]), path or "", revision_or_none


def find_file(
    repo: GitRepo, commit: str, path: str | None, name: str, namespace: str | None
) -> str:
    """The file at ``commit`` that holds canary ``name``: ``path`` itself when it is such a file,
    else the one YAML file under directory ``path`` (the whole tree when None) holding it.

    Raises :class:`WriteBackError` when no file, or more than one, holds the canary.
    """
    where = f"{namespace}/{name}" if namespace else name
    clean = (path or "").strip("/")
    if clean:
        text = repo.read(commit, clean)
        if text is not None:
            if find_canary(text, name, namespace) is None:
                raise WriteBackError(f"{clean} holds no ModelCanary {where}")
            return clean
    candidates = [p for p in repo.files(commit, clean) if p.endswith(YAML_SUFFIXES)]
    if clean and not candidates:
        raise WriteBackError(f"{clean} is neither a file nor a directory with YAML files")
    found = []
    for file in candidates:
        text = repo.read(commit, file)
        if text is not None and find_canary(text, name, namespace) is not None:
            found.append(file)
    if not found:
        raise WriteBackError(f"no YAML file under {clean or '/'} holds the ModelCanary {where}")
    if len(found) > 1:
        raise WriteBackError(f"the ModelCanary {where} is in several files: {', '.join(found)}")
    return found[0]
