"""The controller's git flags and the wiring of write-back and the git source from them.

Owns :func:`add_arguments` (``--git-*``) and :func:`build` (the write-back notifier and, with
``--git-repo``, a :class:`~controlplane.gitops.source.GitSource`). Only ``https://``, ``ssh://``
and ``user@host:path`` remotes are taken. Called by :mod:`controlplane.cli.controller`.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controlplane.errors import Problem, UsageError
from controlplane.gitops.credentials import (
    DEFAULT_USERNAME,
    GitCredentials,
    redact,
    split_userinfo,
)
from controlplane.gitops.locate import DEFAULT_ARGOCD_NAMESPACE
from controlplane.gitops.source import GitSource, default_cache_dir
from controlplane.gitops.writeback import GitWriteBack
from controlplane.kube.client import KubeClient
from controlplane.spec.git_url import git_url_problem
from controlplane.spec.units import parse_duration

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--git-*`` flags (docs/git-writeback.md)."""
    g = p.add_argument_group(
        "git", "the git source and write-back of rollbacks (docs/git-writeback.md)"
    )
    g.add_argument(
        "--git-repo",
        metavar="URL",
        help="apply the ModelCanary files of this repo (https://, ssh:// or user@host:path)",
    )
    g.add_argument("--git-path", default="canary/", metavar="DIR", help="directory in the repo")
    g.add_argument("--git-branch", default="main", metavar="BRANCH", help="branch to apply")
    g.add_argument("--git-interval", default="1m", metavar="DURATION", help="poll interval")
    g.add_argument("--git-prune", action="store_true", help="delete canaries whose file left git")
    g.add_argument(
        "--git-namespace",
        default="default",
        metavar="NS",
        help="namespace of documents that name none",
    )
    g.add_argument("--git-token-file", metavar="FILE", help="HTTPS token for the git source")
    g.add_argument("--git-ssh-key-file", metavar="FILE", help="SSH private key for the git source")
    g.add_argument(
        "--git-username",
        default=DEFAULT_USERNAME,
        metavar="NAME",
        help="user name sent with --git-token-file over HTTPS",
    )
    g.add_argument(
        "--git-cache-dir",
        metavar="DIR",
        help="where repositories are mirrored (default: <tmp>/canary-git)",
    )
    g.add_argument(
        "--git-write-back-on-abort",
        action="store_true",
        help="also write back rollbacks a user aborted (default: automatic rollbacks only)",
    )
    g.add_argument(
        "--github-api-url",
        metavar="URL",
        help="GitHub API (default: https://api.github.com, https://HOST/api/v3 on Enterprise "
        "Server)",
    )
    g.add_argument(
        "--gitlab-api-url", metavar="URL", help="GitLab API (default https://HOST/api/v4)"
    )
    g.add_argument(
        "--argocd-namespace",
        default=DEFAULT_ARGOCD_NAMESPACE,
        metavar="NS",
        help="namespace of the Argo CD Applications whose repo a rollback is written back to",
    )


def _read(path: str, flag: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None


def credentials_from(args: argparse.Namespace) -> GitCredentials | None:
    """The git source's credentials from ``--git-token-file`` / ``--git-ssh-key-file``."""
    if args.git_token_file and args.git_ssh_key_file:
        raise UsageError("--git-token-file and --git-ssh-key-file exclude each other")
    if args.git_token_file:
        token = _read(args.git_token_file, "--git-token-file")
        return GitCredentials(token=token, username=args.git_username)
    if args.git_ssh_key_file:
        return GitCredentials(ssh_key=_read(args.git_ssh_key_file, "--git-ssh-key-file") + "\n")
    return None


@dataclass
class GitParts:
    """Write-back (a Notifier) and the optional git source, with their lifecycle."""

    write_back: GitWriteBack
    source: GitSource | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def on_git_push(self) -> Callable[[], None] | None:
        """What the push webhook calls (None without a git source)."""
        return self.source.trigger if self.source is not None else None

    def start(self, stop: threading.Event, namespaces: Iterable[str | None] = (None,)) -> None:
        """Start the git source's thread and queue the write-backs a restart may have missed."""
        if self.source is not None:
            thread = threading.Thread(
                target=self.source.run, args=(stop,), name="git-source", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        try:
            self.write_back.recover(namespaces)
        except Exception:  # a failed listing must not stop the controller
            log.exception("git write-back: cannot look for missed rollbacks")

    def close(self, timeout_s: float = 10.0) -> None:
        self.write_back.close(timeout_s)
        for thread in self._threads:
            thread.join(timeout_s)


def build(
    args: argparse.Namespace,
    kube: KubeClient,
    clock: Callable[[], float] = time.time,
    *,
    on_invalid: Callable[[str, list[Problem]], None] | None = None,
) -> GitParts:
    """:class:`GitParts` of the flags. ``on_invalid`` is the alert hook for invalid files."""
    try:
        interval = parse_duration(args.git_interval).seconds
    except ValueError as exc:
        raise UsageError(f"--git-interval: {exc}") from None
    if interval <= 0:
        raise UsageError("--git-interval must be longer than 0")
    cache = args.git_cache_dir or default_cache_dir()
    api_urls = {
        k: v for k, v in (("github", args.github_api_url), ("gitlab", args.gitlab_api_url)) if v
    }
    write_back = GitWriteBack(
        kube,
        os.path.join(cache, "write-back"),
        api_urls=api_urls,
        on_abort=args.git_write_back_on_abort,
        argocd_namespace=args.argocd_namespace,
    )
    source = None
    if args.git_repo:
        problem = git_url_problem(args.git_repo)
        if problem is not None:
            raise UsageError(f"--git-repo: {redact(problem, split_userinfo(args.git_repo)[1])}")
        source = GitSource(
            kube,
            args.git_repo,
            args.git_path,
            args.git_branch,
            interval,
            credentials_from(args),
            clock,
            cache_dir=os.path.join(cache, "source"),
            prune=args.git_prune,
            namespace=args.git_namespace,
            on_invalid=on_invalid,
        )
    return GitParts(write_back, source)
