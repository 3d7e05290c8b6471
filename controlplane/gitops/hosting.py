"""Opening a pull request (GitHub) or merge request (GitLab) for a pushed branch.

Owns the two REST calls of write-back's ``pull-request`` mode and how their coordinates are derived
from a repository URL:

- GitHub: ``POST {api}/repos/{owner}/{repo}/pulls`` with ``{title, head, base, body}``, token as
  ``Authorization: Bearer``; ``api`` is ``https://api.github.com`` for github.com, else
  ``https://<host>/api/v3`` (GitHub Enterprise Server).
- GitLab: ``POST {api}/projects/{url-encoded path}/merge_requests`` with ``{source_branch,
  target_branch, title, description}``, token as ``PRIVATE-TOKEN``; ``api`` is
  ``https://<host>/api/v4``.

"Already exists" answers (GitHub 422 naming an existing pull request, GitLab 409) count as success:
a retried write-back after a restart must not fail on its own earlier request. The provider is the
spec's ``provider``, else guessed from the host name (``github`` / ``gitlab`` in it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

import httpx

from controlplane.errors import GitError

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
        response = httpx.post(url, json=payload, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise GitError(f"{provider} API {api}: {type(exc).__name__}: {exc}") from None
    if response.status_code in (200, 201):
        data = _json(response)
        link = data.get("html_url") or data.get("web_url")
        return PullRequest(url=str(link) if link else None, created=True)
    text = response.text[:500]
    if (provider == "github" and response.status_code == 422 and "already exists" in text) or (
        provider == "gitlab" and response.status_code == 409
    ):
        return PullRequest(url=None, created=False)
    raise GitError(f"{provider} API {url} answered {response.status_code}: {text}")


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
