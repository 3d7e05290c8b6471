"""Stand-ins for ``kind``, ``kubectl``, ``helm`` and ``docker``: scripts/kind-up.sh runs here on
them.

tests/scripts/test_kind_up.py puts one wrapper per tool on ``PATH`` (``python fakebin.py TOOL
ARGS...``) and runs the script. Every call is appended to ``$FAKE_LOG`` as one JSON line:
``{"tool", "argv", "stdin", "rendered"}``. What each tool does:

- ``kubectl apply ... -f -`` records the YAML it was given on stdin; ``kubectl get nodes -l K=V``
  and ``kubectl get node N -o jsonpath={.metadata.labels.K}`` answer from ``$FAKE_NODES`` (the
  nodes kind would create from kind-config.yaml); every other call only records.
- ``helm template`` and ``helm upgrade --install`` run the real ``helm template`` (``$FAKE_HELM``)
  on a local copy of the chart: ``$FAKE_CHARTS`` maps each chart reference the script names
  (an ``oci://`` reference, or a path in the repository) to a folder, the version that folder
  holds and extra values files. ``template`` prints what it rendered (the script pipes it into
  ``kubectl apply``); ``upgrade --install`` records it (with ``--include-crds`` unless the
  script said ``--skip-crds``: an install applies the chart's crds/ folder too). An unmapped chart
  is recorded with ``rendered: null``. A flag this file does not know, or a ``--version`` other
  than the mapped one, fails the call (exit 3), so the script cannot drift from what is checked.
- ``kind version`` answers ``$FAKE_KIND_VERSION``; ``kind get clusters`` none.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any, NoReturn

HELM_VALUE_FLAGS = {"--version", "--namespace", "-n", "--set", "--set-string", "--timeout", "-f"}
HELM_VALUE_FLAGS |= {"--values"}
HELM_BOOL_FLAGS = {"--install", "--create-namespace", "--wait", "--skip-crds", "--include-crds"}


def record(entry: dict[str, Any]) -> None:
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")


def fail(entry: dict[str, Any], message: str) -> NoReturn:
    entry["error"] = message
    record(entry)
    sys.stderr.write(f"fake {entry['tool']}: {message}\n")
    sys.exit(3)


def kubectl(argv: list[str], entry: dict[str, Any]) -> None:
    if argv[:1] == ["apply"] and "-f" in argv and argv[argv.index("-f") + 1] == "-":
        entry["stdin"] = sys.stdin.read()
    nodes: dict[str, dict[str, str]] = json.loads(os.environ.get("FAKE_NODES", "{}"))
    if argv[:2] == ["get", "nodes"] and "-l" in argv:
        key, _, value = argv[argv.index("-l") + 1].partition("=")
        print(" ".join(n for n, labels in nodes.items() if labels.get(key) == value))
    elif argv[:2] == ["get", "node"] and "-o" in argv:
        path = argv[argv.index("-o") + 1]
        found = re.fullmatch(r"jsonpath=\{\.metadata\.labels\.(.+)\}", path)
        if not found:
            fail(entry, f"unknown output {path}")
        label = found.group(1).replace("\\.", ".")
        print(nodes[argv[2]].get(label, ""))
    record(entry)


def helm(argv: list[str], entry: dict[str, Any]) -> None:
    verb = argv[0] if argv else ""
    if verb not in ("template", "upgrade"):
        fail(entry, f"unexpected helm {verb}")
    positional: list[str] = []
    flags: list[tuple[str, str | None]] = []
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        name, eq, inline = arg.partition("=")
        if name in HELM_VALUE_FLAGS:
            flags.append((name, inline if eq else rest.pop(0)))
        elif arg in HELM_BOOL_FLAGS:
            flags.append((arg, None))
        elif arg.startswith("-"):
            fail(entry, f"unknown flag {arg}")
        else:
            positional.append(arg)
    given = {name for name, _ in flags}
    if verb == "upgrade" and "--install" not in given:
        fail(entry, "helm upgrade without --install")
    if len(positional) != 2:
        fail(entry, f"expected RELEASE CHART, got {positional}")
    release, chart = positional
    entry.update(release=release, chart=chart, flags=flags)
    charts: dict[str, dict[str, Any]] = json.loads(os.environ["FAKE_CHARTS"])
    local = charts.get(chart)
    if local is None:
        if verb == "template":
            fail(entry, f"no local copy of {chart}: the piped output cannot be checked")
        entry["rendered"] = None
        record(entry)
        return
    version = dict(flags).get("--version")
    if local.get("version") and version != local["version"]:
        fail(entry, f"{chart} --version {version}, but the local copy is {local['version']}")
    command = [os.environ["FAKE_HELM"], "template", release, local["dir"]]
    command += ["--kube-version", os.environ["FAKE_KUBE_VERSION"]]
    for values in local.get("values", []):
        command += ["--values", values]
    for name, value in flags:
        if name in ("--namespace", "-n", "--set", "--set-string", "--values", "-f"):
            command += [name, str(value)]
    if "--skip-crds" in given:
        command.append("--skip-crds")
    elif verb == "upgrade":
        command.append("--include-crds")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        fail(entry, f"helm template {chart}: {done.stderr.strip()}")
    entry["rendered"] = done.stdout
    record(entry)
    if verb == "template":
        sys.stdout.write(done.stdout)
    else:
        print(f'Release "{release}" has been upgraded. Happy Helming!')


def kind(argv: list[str], entry: dict[str, Any]) -> None:
    if argv[:1] == ["version"]:
        print(f"kind {os.environ['FAKE_KIND_VERSION']} go1.24 linux/amd64")
    record(entry)


def main() -> None:
    tool, argv = sys.argv[1], sys.argv[2:]
    entry: dict[str, Any] = {"tool": tool, "argv": argv, "stdin": None}
    {"kubectl": kubectl, "helm": helm, "kind": kind}.get(tool, lambda a, e: record(e))(argv, entry)


if __name__ == "__main__":
    main()
