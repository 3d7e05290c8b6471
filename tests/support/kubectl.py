"""The real ``kubectl`` running the ``kubectl-canary`` plugin, for the plugin's real-server tests.

:class:`Kubectl` runs ``kubectl`` v1.34.10 (built by ``scripts/build-kube.sh`` into
:func:`harness.cluster.kubeapi.tool_dir`) as a subprocess in a clean environment: ``PATH`` is
the virtualenv's ``bin`` (where ``kubectl-canary`` is installed) and the tool folder, ``HOME`` and
``TMPDIR`` are a test folder, ``KUBECONFIG`` the files the test wrote. :meth:`Kubectl.start`
runs a command that keeps going (``get -w``, ``status -w``) and reads its output as it comes.

:func:`service_account_token` mints a token with the TokenRequest API (what ``kubectl create
token`` does), :func:`write_kubeconfig` writes users and contexts for one server.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster.kubeapi import KUBE_VERSION, LoopbackCluster, tool_dir

PLUGIN = "kubectl-canary"


@dataclass
class Ran:
    """A finished command: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def kubectl_binary() -> Path:
    """``kubectl`` of the pinned version, or a test failure saying how to build it."""
    path = tool_dir() / "kubectl"
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"kubectl {KUBE_VERSION} is not built ({path}): run `make kube-tools` "
            "(it needs Go >= 1.24 on PATH)",
            pytrace=False,
        )
    return path


def plugin_dir() -> Path:
    """The folder holding the installed ``kubectl-canary`` (the virtualenv's ``bin``)."""
    folder = Path(sys.executable).parent  # not resolved: the venv's bin, not the base Python's
    if not os.access(folder / PLUGIN, os.X_OK):
        pytest.fail(
            f"{PLUGIN} is not installed beside {sys.executable}: run `pip install -e .`",
            pytrace=False,
        )
    return folder


class Kubectl:
    """``kubectl`` in an environment of its own (see the module docstring)."""

    def __init__(self, home: Path, kubeconfigs: list[Path]) -> None:
        self.binary = kubectl_binary()
        home.mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        self.env = {
            "PATH": os.pathsep.join([str(plugin_dir()), str(self.binary.parent)]),
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),  # the python client's discovery cache
            "KUBECONFIG": os.pathsep.join(str(p) for p in kubeconfigs),
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
        }

    def run(self, *args: str, timeout: float = 60.0) -> Ran:
        """``kubectl ARGS`` to the end (``timeout`` is a safety net, not a measurement)."""
        done = subprocess.run(
            [str(self.binary), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def into_closed_pipe(self, *args: str, timeout: float = 60.0) -> Ran:
        """``kubectl ARGS`` writing to a pipe whose reader is already gone (``| head`` done)."""
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run(
                [str(self.binary), *args],
                env=self.env,
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        finally:
            os.close(write)
        return Ran(done.returncode, "", done.stderr)

    def canary(self, *args: str, timeout: float = 60.0) -> Ran:
        """``kubectl canary ARGS``."""
        return self.run("canary", *args, timeout=timeout)

    def start(self, *args: str) -> Running:
        """``kubectl ARGS`` in the background, its stdout read line by line as it comes."""
        proc = subprocess.Popen(
            [str(self.binary), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_a_terminal_starts_it,
        )
        return Running(proc)


def _as_a_terminal_starts_it() -> None:
    """In the child before exec: SIGINT delivered and handled by default, as a shell starts a
    foreground command. A pytest-xdist worker that ran other tests may have SIGINT blocked or
    ignored, and both are inherited across exec: the plugin would never see the Ctrl-C that
    :meth:`Running.interrupt` sends (seen only in full runs)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """A command that keeps running: its stdout lines as they come, then its end."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, found: Callable[[str], bool], timeout: float = 60.0) -> str:
        """Read stdout until a line for which ``found`` holds; return that line.

        Fails (with what was read and stderr) when the program ends first or ``timeout`` (a
        safety net) passes."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.0))
            except queue.Empty:
                self.kill()
                pytest.fail(f"no matching line within {timeout}s; read:\n{''.join(self.lines)}")
            if line is None:
                self._queue.put(None)  # the end stays visible to later reads
                code, err = self.proc.wait(), self._stderr()
                pytest.fail(
                    f"exited {code} before a matching line; read:\n{''.join(self.lines)}\n"
                    f"stderr:\n{err}"
                )
            self.lines.append(line)
            if found(line):
                return line

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the program (kubectl execs the plugin: it is the same process)."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 60.0) -> Ran:
        """Wait for the end; the exit code, every stdout line read, and stderr."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout}s; read:\n{''.join(self.lines)}")
        self._reader.join(timeout=10)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        err = self._stderr()
        self._close()
        return Ran(code, "".join(self.lines), err)

    def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def _close(self) -> None:
        self._reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def kill(self) -> None:
        """Stop the program if it still runs (a failed test's cleanup) and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def service_account_token(cluster: LoopbackCluster, namespace: str, account: str) -> str:
    """A token of ``namespace/account`` from the TokenRequest API (one hour)."""
    answer = cluster.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    token: str = answer["status"]["token"]
    return token


def write_kubeconfig(
    path: Path,
    cluster: LoopbackCluster,
    users: Mapping[str, str],
    contexts: Mapping[str, tuple[str, str | None]],
    *,
    current: str | None = None,
    server: str | None = None,
    cluster_name: str = "loopback",
) -> Path:
    """A kubeconfig at ``path``: ``users`` (name -> token), ``contexts`` (name -> (user,
    namespace or None)) on one cluster entry ``cluster_name`` (at ``server`` if given)."""
    import base64

    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server or cluster.server,
                    "certificate-authority-data": base64.b64encode(
                        cluster.ca.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": {"token": token}} for name, token in users.items()],
        "contexts": [
            {
                "name": name,
                "context": {
                    "cluster": cluster_name,
                    "user": user,
                    **({"namespace": namespace} if namespace else {}),
                },
            }
            for name, (user, namespace) in contexts.items()
        ],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path
