"""Opening a pull request (GitHub) or merge request (GitLab) for a pushed branch.

Owns the two REST calls of write-back's ``pull-request`` mode, derived from the repository URL;
"already exists" counts as success so a retried write-back does not fail. The host is a tenant's
choice, so answers are read bounded and an error names the status, never the body. See
docs/git-writeback.md, "Pull-request mode".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

import httpx

from controlplane.errors import GitError
from controlplane.providers.bounded import (
    MAX_ANSWER_BYTES,
    clip,
    json_object,
    read_capped,
    without_bytes,
)

Provider = Literal["github", "gitlab"]
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PullRequest:
    """What the host answered: the web URL (None when it already existed and gave none)."""

    url: str | None
    created: bool


def repo_path(url: str) -> str:
    """``owner/repo`` (or ``group/sub/project``) of an https, ssh or scp-like git URL."""
    if "://" in url:
        path = urlsplit(url).path
    elif ":" in url:  # git@host:owner/repo.git
        path = url.split(":", 1)[1]
    else:
        path = url
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    if "/" not in path:
        raise GitError(f"cannot tell owner and repository from {url!r}")
    return path


def host_of(url: str) -> str:
    if "://" in url:
        return (urlsplit(url).hostname or "").lower()
    if "@" in url and ":" in url:
        return url.split("@", 1)[1].split(":", 1)[0].lower()
    return ""


def guess_provider(url: str, given: str | None) -> Provider:
    if given in ("github", "gitlab"):
        return given  # type: ignore[return-value]
    host = host_of(url)
    if "github" in host:
        return "github"
    if "gitlab" in host:
        return "gitlab"
    raise GitError(
        f"cannot tell whether {host or url} is GitHub or GitLab: set spec.gitWriteBack.provider"
    )


def default_api_url(provider: Provider, repo_url: str) -> str:
    host = host_of(repo_url)
    if not host:
        raise GitError(f"no API URL known for {repo_url!r}: configure one for {provider}")
    if provider == "github":
        return "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"
    return f"https://{host}/api/v4"


def open_pull_request(
    provider: Provider,
    api_url: str,
    repo_url: str,
    token: str | None,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PullRequest:
    """Open the request; raise :class:`GitError` (without the token) when the host refuses."""
    path = repo_path(repo_url)
    api = api_url.rstrip("/")
    if provider == "github":
        url = f"{api}/repos/{path}/pulls"
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload: dict[str, object] = {"title": title, "head": head, "base": base, "body": body}
    else:
        url = f"{api}/projects/{quote(path, safe='')}/merge_requests"
        headers = {"PRIVATE-TOKEN": token} if token else {}
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": body,
            "remove_source_branch": True,
        }
    try:
        with httpx.stream(
            "POST", url, json=payload, headers=headers, timeout=timeout_s, follow_redirects=False
        ) as response:
            code, reason = response.status_code, response.reason_phrase
            deadline = time.monotonic() + timeout_s
            answer = read_capped(response.iter_bytes(), MAX_ANSWER_BYTES, deadline)
    except httpx.HTTPError as exc:
        raise GitError(
            f"{provider} API {api}: {type(exc).__name__}: {without_bytes(str(exc))}"
        ) from None
    data: dict[str, object] = {} if isinstance(answer, str) else _json(answer)
    if code in (200, 201):
        link = data.get("html_url") or data.get("web_url")
        return PullRequest(url=str(link) if isinstance(link, str) else None, created=True)
    if (provider == "github" and code == 422 and _already_exists(data)) or (
        provider == "gitlab" and code == 409
    ):
        return PullRequest(url=None, created=False)
    said = f"{code} {clip(reason, 60)}".rstrip()
    raise GitError(f"{provider} API {url} answered {said}")


def _json(body: bytearray) -> dict[str, object]:
    """The answer as a JSON object (``{}`` when it is none, or nests too deep)."""
    return json_object(body) or {}


def _already_exists(data: dict[str, object]) -> bool:
    """GitHub's 422 says a pull request for the branch already exists (its ``message`` or an
    ``errors[].message`` says so)."""
    errors = data.get("errors")
    found = [data, *(errors if isinstance(errors, list) else [])]
    return any(isinstance(e, dict) and "already exists" in str(e.get("message")) for e in found)
