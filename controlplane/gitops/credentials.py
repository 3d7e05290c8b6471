"""Git credentials: where they come from and how they reach ``git`` without being written down.

Owns :class:`GitCredentials` (HTTPS token or SSH key, read from a Secret), the environment that
hands them to one ``git`` process (``GIT_ASKPASS``, or a private key file removed afterwards) and
:func:`split_userinfo`. See docs/git-writeback.md, "Credentials".
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from controlplane.errors import GitError, KubeError
from controlplane.kube.client import KubeClient, Ref

USERNAME_KEY = "username"
"""Optional key of the Secret with the HTTPS user name (default ``x-access-token``)."""
KNOWN_HOSTS_KEY = "known_hosts"
"""Optional key of the Secret with SSH known_hosts lines (else host keys are not pinned)."""
DEFAULT_USERNAME = "x-access-token"
"""What GitHub expects with a token; GitLab accepts any user name with a token."""

ASKPASS_SCRIPT = """#!/bin/sh
# Prints the git credentials of this one process, from its environment (nothing secret here).
case "$1" in
  Username*|username*) printf '%s\\n' "$CANARY_GIT_USERNAME" ;;
  *) printf '%s\\n' "$CANARY_GIT_PASSWORD" ;;
esac
"""


@dataclass(frozen=True)
class GitCredentials:
    """What authenticates to a git host: a token (HTTPS basic auth) or an SSH private key."""

    token: str | None = None
    username: str = DEFAULT_USERNAME
    ssh_key: str | None = field(default=None, repr=False)
    known_hosts: str | None = None

    def __repr__(self) -> str:  # never print the token
        kind = "ssh-key" if self.ssh_key else "token" if self.token else "none"
        return f"GitCredentials({kind}, username={self.username!r})"

    def secrets(self) -> list[str]:
        """The secret strings, for redacting messages."""
        return [s for s in (self.token, self.ssh_key) if s]


def from_secret(kube: KubeClient, namespace: str, name: str, key: str) -> GitCredentials:
    """Credentials from key ``key`` of Secret ``namespace/name``.

    A value that looks like a PEM/OpenSSH private key is an SSH key; anything else is a token. The
    Secret may add ``username`` and ``known_hosts``. Raises :class:`GitError` (never with the
    value) when the Secret or the key is missing or not decodable.
    """
    try:
        secret = kube.get(Ref("v1", "Secret", namespace, name))
    except KubeError as exc:
        raise GitError(f"credentials Secret {namespace}/{name}: {exc}") from None

    def value(k: str) -> str | None:
        data = secret.get("data") or {}
        if k in data:
            try:
                return base64.b64decode(data[k], validate=True).decode("utf-8").strip()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise GitError(
                    f"credentials Secret {namespace}/{name}: key {k!r} is not base64 UTF-8"
                ) from None
        plain = (secret.get("stringData") or {}).get(k)
        return str(plain).strip() if plain is not None else None

    secret_value = value(key)
    if not secret_value:
        raise GitError(f"credentials Secret {namespace}/{name} has no key {key!r}")
    known_hosts = value(KNOWN_HOSTS_KEY)
    if "PRIVATE KEY-----" in secret_value:
        return GitCredentials(ssh_key=secret_value + "\n", known_hosts=known_hosts)
    return GitCredentials(token=secret_value, username=value(USERNAME_KEY) or DEFAULT_USERNAME)


def split_userinfo(url: str) -> tuple[str, GitCredentials | None]:
    """``url`` without user info, and the credentials it carried (when it had a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    if not password:
        return clean, GitCredentials(token=None, username=unquote(user))
    username = unquote(user) or DEFAULT_USERNAME
    return clean, GitCredentials(token=unquote(password), username=username)


def redact(text: str, credentials: GitCredentials | None) -> str:
    """``text`` with every secret of ``credentials`` replaced by ``***``."""
    if credentials is None:
        return text
    for secret in credentials.secrets():
        for line in secret.strip().splitlines() or [secret]:
            if len(line) >= 4:
                text = text.replace(line, "***")
    return text


@contextmanager
def git_env(
    credentials: GitCredentials | None, workdir: str, base: Mapping[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """The environment of one ``git`` process with ``credentials`` (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("CANARY_GIT_PASSWORD", None)
    env.pop("CANARY_GIT_USERNAME", None)
    if credentials is None or (credentials.token is None and credentials.ssh_key is None):
        yield env
        return
    if credentials.token is not None:
        script = os.path.join(workdir, "askpass.sh")
        if not os.path.exists(script):
            with open(script, "w", encoding="utf-8") as fh:
                fh.write(ASKPASS_SCRIPT)
            os.chmod(script, stat.S_IRWXU)
        env["GIT_ASKPASS"] = script
        env["CANARY_GIT_USERNAME"] = credentials.username
        env["CANARY_GIT_PASSWORD"] = credentials.token
        yield env
        return
    fd, key_path = tempfile.mkstemp(prefix="key-", dir=workdir)
    hosts_path = None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(credentials.ssh_key or "")
        os.chmod(key_path, stat.S_IRUSR | stat.S_IWUSR)
        ssh = ["ssh", "-i", key_path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
        if credentials.known_hosts:
            hfd, hosts_path = tempfile.mkstemp(prefix="known-hosts-", dir=workdir)
            with os.fdopen(hfd, "w", encoding="utf-8") as fh:
                fh.write(credentials.known_hosts + "\n")
            ssh += ["-o", f"UserKnownHostsFile={hosts_path}", "-o", "StrictHostKeyChecking=yes"]
        else:
            ssh += ["-o", "StrictHostKeyChecking=accept-new"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        yield env
    finally:
        for path in (key_path, hosts_path):
            if path is not None and os.path.exists(path):
                os.unlink(path)
