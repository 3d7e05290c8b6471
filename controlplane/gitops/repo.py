"""One remote git repository, mirrored in a local cache, driven through the ``git`` binary.

Owns :class:`GitRepo`: a bare mirror per URL and the few operations write-back and the git source
need (read, list, history, trailers, a one-file commit on a private index, a push without force).
Remotes are held to https and ssh (``GIT_ALLOW_PROTOCOL``); commands run without a shell, with a
time limit and redacted errors; one lock per cache directory. See docs/git-writeback.md, "Safety".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass

from controlplane.errors import GitError
from controlplane.gitops.credentials import GitCredentials, git_env, redact, split_userinfo
from controlplane.spec.git_url import git_url_problem

DEFAULT_TIMEOUT_S = 120.0
ALLOWED_PROTOCOLS = "https:ssh"
"""``GIT_ALLOW_PROTOCOL`` of every git process: the transports :func:`git_url_problem` admits."""
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: str) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.RLock())


@dataclass(frozen=True)
class Identity:
    """Author and committer of the commits the controller makes."""

    name: str = "canary-controller"
    email: str = "canary-controller@controlplane.dev"


class GitRepo:
    """A remote repository (``url``) mirrored in a bare repository under ``cache_root``.

    Raises :class:`GitError` when ``url`` is not an https, ssh or scp-like git URL."""

    def __init__(
        self,
        url: str,
        cache_root: str | os.PathLike[str],
        credentials: GitCredentials | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        problem = git_url_problem(url)
        if problem is not None:
            raise GitError(redact(problem, split_userinfo(url)[1]))
        clean, from_url = split_userinfo(url)
        self.url = clean
        self.credentials = credentials if credentials is not None else from_url
        digest = hashlib.sha256(clean.encode()).hexdigest()[:16]
        self.dir = os.path.join(os.fspath(cache_root), f"{digest}.git")
        self.timeout_s = timeout_s
        self.lock = _lock_for(self.dir)

    def __repr__(self) -> str:
        return f"GitRepo({self.url!r})"

    # --- running git -----------------------------------------------------------------------------

    def git(
        self,
        *args: str,
        input_text: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git -C <cache> args...``; raise :class:`GitError` (redacted) on failure."""
        with self.lock:
            self._ensure()
            return self._run(["-C", self.dir, *args], input_text, env, check)

    def _run(
        self,
        args: list[str],
        input_text: str | None,
        env: dict[str, str] | None,
        check: bool,
    ) -> subprocess.CompletedProcess[str]:
        os.makedirs(os.path.dirname(self.dir), exist_ok=True)
        command = ["git", "-c", "credential.helper=", *args]
        with git_env(self.credentials, os.path.dirname(self.dir)) as base:
            if env:
                base.update(env)
            base["GIT_ALLOW_PROTOCOL"] = ALLOWED_PROTOCOLS
            try:
                done = subprocess.run(
                    command,
                    input=input_text,
                    capture_output=True,
                    text=True,
                    env=base,
                    timeout=self.timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise GitError(
                    f"git {_verb(args)} on {self.url} took longer than {self.timeout_s:g}s"
                ) from None
            except OSError as exc:
                raise GitError(f"cannot run git: {exc.strerror or exc}") from None
        if check and done.returncode != 0:
            raise GitError(self._failure(args, done))
        return done

    def _failure(self, args: list[str], done: subprocess.CompletedProcess[str]) -> str:
        detail = (done.stderr or done.stdout).strip().splitlines()
        text = "; ".join(line.strip() for line in detail[-3:]) or f"exit {done.returncode}"
        return redact(f"git {_verb(args)} on {self.url} failed: {text}", self.credentials)

    def _ensure(self) -> None:
        if os.path.isdir(os.path.join(self.dir, "objects")):
            return
        os.makedirs(os.path.dirname(self.dir), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".init-", dir=os.path.dirname(self.dir))
        self._run(["init", "--bare", "--quiet", tmp], None, None, True)
        self._run(["-C", tmp, "remote", "add", "origin", self.url], None, None, True)
        try:
            os.rename(tmp, self.dir)
        except OSError:  # another process won the race: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)

    # --- reading ---------------------------------------------------------------------------------

    def fetch(self, branch: str) -> str | None:
        """Fetch ``branch``; its tip commit, or None when the remote has no such branch."""
        ref = f"refs/remotes/origin/{branch}"
        done = self.git(
            "fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{branch}:{ref}", check=False
        )
        if done.returncode != 0:
            if "couldn't find remote ref" in (done.stderr or ""):
                return None
            raise GitError(self._failure(["fetch"], done))
        return self.rev_parse(ref)

    def rev_parse(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").stdout.strip()

    def default_branch(self) -> str:
        """The branch the remote's HEAD points at (what Argo CD's ``HEAD`` means)."""
        out = self.git("ls-remote", "--symref", "origin", "HEAD").stdout
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
        raise GitError(f"cannot tell the default branch of {self.url}")

    def remote_branch(self, branch: str) -> str | None:
        """The commit ``branch`` has on the remote now, or None (``git ls-remote``)."""
        out = self.git("ls-remote", "origin", f"refs/heads/{branch}").stdout.split()
        return out[0] if out else None

    def read(self, commit: str, path: str) -> str | None:
        """The text of ``path`` at ``commit``, or None when it does not exist there."""
        done = self.git("cat-file", "blob", f"{commit}:{path}", check=False)
        if done.returncode != 0:
            return None
        return done.stdout

    def files(self, commit: str, under: str = "") -> list[str]:
        """Paths of the files at ``commit`` under directory ``under`` ("" for all), sorted."""
        args = ["ls-tree", "-r", "--name-only", "-z", commit]
        prefix = under.strip("/")
        if prefix:
            args += ["--", prefix]
        out = self.git(*args).stdout
        return sorted(p for p in out.split("\0") if p)

    def file_history(self, commit: str, path: str, limit: int = 500) -> list[str]:
        """Commits reachable from ``commit`` that changed ``path``, newest first."""
        out = self.git("log", f"--max-count={limit}", "--format=%H", commit, "--", path).stdout
        return out.split()

    def find_trailer(self, commit: str, trailer: str) -> str | None:
        """The newest commit reachable from ``commit`` whose message contains ``trailer``."""
        out = self.git(
            "log", "-F", f"--grep={trailer}", "--max-count=1", "--format=%H", commit
        ).stdout.strip()
        return out or None

    def subject(self, commit: str) -> str:
        return self.git("log", "-1", "--format=%s", commit).stdout.strip()

    def message(self, commit: str) -> str:
        return self.git("log", "-1", "--format=%B", commit).stdout

    # --- writing ---------------------------------------------------------------------------------

    def commit_file(
        self, parent: str, path: str, content: str, message: str, author: Identity
    ) -> str:
        """A new commit on top of ``parent`` where only ``path`` holds ``content``."""
        with self.lock:
            blob = self.git("hash-object", "-w", "--stdin", input_text=content).stdout.strip()
            mode = "100644"
            listed = self.git("ls-tree", parent, "--", path).stdout.split()
            if listed and listed[0] in ("100644", "100755"):
                mode = listed[0]
            fd, index = tempfile.mkstemp(prefix="index-", dir=self.dir)
            os.close(fd)
            os.unlink(index)  # git wants to create it
            env = {
                "GIT_INDEX_FILE": index,
                "GIT_AUTHOR_NAME": author.name,
                "GIT_AUTHOR_EMAIL": author.email,
                "GIT_COMMITTER_NAME": author.name,
                "GIT_COMMITTER_EMAIL": author.email,
            }
            try:
                self.git("read-tree", parent, env=env)
                self.git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
                tree = self.git("write-tree", env=env).stdout.strip()
                return self.git(
                    "commit-tree", tree, "-p", parent, "-F", "-", input_text=message, env=env
                ).stdout.strip()
            finally:
                if os.path.exists(index):
                    os.unlink(index)

    def push(self, commit: str, branch: str) -> bool:
        """Push ``commit`` to ``branch`` (never forced). False when the remote moved on
        (non-fast-forward): fetch, redo the change on the new tip and push again."""
        done = self.git(
            "push", "--porcelain", "origin", f"{commit}:refs/heads/{branch}", check=False
        )
        if done.returncode == 0:
            return True
        out = f"{done.stdout}\n{done.stderr}"
        if any(
            line.startswith("!") and ("non-fast-forward" in line or "fetch first" in line)
            for line in out.splitlines()
        ):
            return False
        raise GitError(self._failure(["push"], done))


def _verb(args: list[str]) -> str:
    rest = list(args)
    while rest and rest[0] in ("-C", "-c"):
        rest = rest[2:]
    return rest[0] if rest else "?"
