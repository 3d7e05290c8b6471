"""``kubectl canary`` through the real ``kubectl`` v1.34.10 against the real kube-apiserver.

The pinned ``kubectl`` (``make kube-tools``) finds the installed ``kubectl-canary`` on ``PATH``
and execs it with every argument; the plugin reads ``KUBECONFIG`` (two files, merged as kubectl
merges them: an admin file and one of restricted users) and honours ``--context`` and ``-n``. The
canaries are the contract example, moved on by the real rollout state machine and written through
the status subresource as the controller writes them (:class:`support.cli_rollouts.Rollout`);
``Rollout.consume`` is the controller acting on recorded intents.

Users: ``admin`` (``system:masters``; contexts ``admin`` without a namespace and ``team`` in the
test namespace), ``viewer`` (a ServiceAccount token from TokenRequest, bound to a Role that may
get, list and watch ModelCanaries in the test namespace), ``nobody`` (a ServiceAccount with no
binding), ``stranger`` (a token the server does not know) and a context whose server is gone.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from support.cli_rollouts import DAY, Clock, Rollout, at_step_two
from support.kubectl import (
    Kubectl,
    Ran,
    plugin_dir,
    service_account_token,
    write_kubeconfig,
)
from support.realkube import new_namespace

from controlplane.cli.output import shown
from controlplane.kube.real import RealKube
from controlplane.local.ports import free_port
from controlplane.operations import get_canary, record_intent
from controlplane.rollout.intents import read_intents
from harness.cluster.kubeapi import KUBE_VERSION, LoopbackCluster

pytestmark = pytest.mark.binary

GROUP = "canary.controlplane.dev"


@dataclass
class World:
    kubectl: Kubectl
    kube: RealKube
    ns: str

    def rollout(self, name: str) -> Rollout:
        """A canary ``name`` 3 days into step 2/4 (weight 25%), its clock at the real time."""
        clock = Clock(time.time() - 4 * DAY)
        rollout = at_step_two(self.kube, clock, name=name, namespace=self.ns)  # type: ignore[arg-type]
        clock.now = max(clock.now, time.time())  # intents from the plugin carry the real time
        return rollout

    def obj(self, name: str) -> dict[str, Any]:
        return get_canary(self.kube, self.ns, name)

    def version(self, name: str) -> str:
        return str(self.obj(name)["metadata"]["resourceVersion"])

    def intents(self, name: str) -> list[tuple[str, str, str]]:
        """(id, verb, user) of each intent recorded on the canary, oldest first."""
        recorded, problem = read_intents(self.obj(name)["metadata"].get("annotations"))
        assert problem == ""
        return [(r.id, r.intent.verb, r.intent.user) for r in recorded]

    def controller_acts(self, rollout: Rollout, verb: str, user: str = "bob") -> None:
        """Someone records ``verb`` (not through the plugin) and the controller acts on it."""
        record_intent(self.kube, self.ns, rollout.name, verb, user)
        rollout.clock.now = max(rollout.clock.now, time.time())
        rollout.consume()


def role(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "canary-viewer", "namespace": ns},
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["modelcanaries"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }


def binding(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "canary-viewer", "namespace": ns},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "canary-viewer",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}],
    }


@pytest.fixture(scope="module")
def world(
    loopback: LoopbackCluster, real_kube: RealKube, tmp_path_factory: pytest.TempPathFactory
) -> World:
    ns = new_namespace(real_kube, "kubectl")
    for account in ("viewer", "nobody"):
        real_kube.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": ns},
            }
        )
    real_kube.create(role(ns))
    real_kube.create(binding(ns))
    home = tmp_path_factory.mktemp("kubectl-home")
    admin = write_kubeconfig(
        home / "admin.yaml",
        loopback,
        {"admin": loopback.token},
        {"admin": ("admin", None), "team": ("admin", ns)},
        current="admin",
    )
    others = write_kubeconfig(
        home / "others.yaml",
        loopback,
        {
            "viewer": service_account_token(loopback, ns, "viewer"),
            "nobody": service_account_token(loopback, ns, "nobody"),
            "stranger": "not-a-token-this-server-knows",
        },
        {"viewer": ("viewer", ns), "nobody": ("nobody", ns), "stranger": ("stranger", ns)},
    )
    gone = write_kubeconfig(
        home / "gone.yaml",
        loopback,
        {"gone": "t"},
        {"gone": ("gone", ns)},
        server=f"https://127.0.0.1:{free_port()}",
        cluster_name="gone",
    )
    return World(Kubectl(home, [admin, others, gone]), real_kube, ns)


def no_traceback(ran: Ran) -> None:
    assert "Traceback" not in ran.err, ran.err
    assert "Traceback" not in ran.out, ran.out


def one_error_line(ran: Ran) -> str:
    """The single ``error: ...`` line a failed command prints on stderr."""
    no_traceback(ran)
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("error: "), ran.err
    return lines[0]


def canaries(world: World, *argv: list[str]) -> list[Ran]:
    """Several ``kubectl canary`` commands at once (each is its own process)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: world.kubectl.canary(*args), argv))


# --- the plugin is found -------------------------------------------------------------------------


def test_kubectl_finds_the_plugin(world: World) -> None:
    version = world.kubectl.run("version", "--client")
    assert version.code == 0, version.err
    assert f"Client Version: {KUBE_VERSION}" in version.out
    plugins = world.kubectl.run("plugin", "list")
    assert plugins.code == 0, plugins.err
    assert str(plugin_dir() / "kubectl-canary") in plugins.out.splitlines()
    helped = world.kubectl.canary("--help")
    assert helped.code == 0, helped.err
    assert helped.out.startswith("usage: kubectl canary "), helped.out
    flag_first = world.kubectl.run("--context", "team", "canary", "list")
    assert flag_first.code == 1  # kubectl's rule: flags go after the plugin's name
    assert "flags cannot be placed before plugin name: --context" in flag_first.err


def test_output_into_a_closed_pipe_ends_quietly(world: World) -> None:
    world.rollout("piped")
    ran = world.kubectl.into_closed_pipe("canary", "list", "--context", "team", "-o", "yaml")
    assert ran.code == 141, ran.err  # 128 + SIGPIPE, as `kubectl canary list -o yaml | head`
    assert ran.err == ""


# --- reading: list, get, status, history ----------------------------------------------------------


def test_list_get_status_history_with_context_namespace_and_output(world: World) -> None:
    world.rollout("reader")
    ns = world.ns
    text, as_json, as_yaml, default_ns, everywhere = canaries(
        world,
        ["list", "--context", "team"],
        ["list", "-n", ns, "-o", "json"],
        ["list", "--context=team", "--output=yaml"],
        ["list"],  # context admin: no namespace, so "default"
        ["list", "-A", "--context", "team"],
    )
    for ran in (text, as_json, as_yaml, default_ns, everywhere):
        assert ran.code == 0, ran.err
        no_traceback(ran)
    header, *rows = text.out.splitlines()
    assert header.split() == ["NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANDIDATE", "AGE"]
    assert next(r.split()[:7] for r in rows if r.startswith("reader ")) == [
        "reader",
        "progressing",
        "2/4",
        "25%",
        "bf16",
        "(none)",
        "nf4",
    ]
    server = world.obj("reader")
    for listed in (json.loads(as_json.out), yaml.safe_load(as_yaml.out)):
        assert listed["kind"] == "List"
        (item,) = [i for i in listed["items"] if i["metadata"]["name"] == "reader"]
        assert item["metadata"]["resourceVersion"] == server["metadata"]["resourceVersion"]
        assert item["status"] == shown(server)["status"]  # times as RFC 3339
    assert default_ns.out == ""
    assert default_ns.err == "No modelcanaries found in namespace 'default'.\n"
    assert everywhere.out.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(r.split()[:2] == [ns, "reader"] for r in everywhere.out.splitlines())

    got_text, got_json, got_yaml, status, history, last = canaries(
        world,
        ["get", "reader", "--context", "team"],
        ["get", "reader", "-n", ns, "-o", "json"],
        ["get", "reader", "--context", "admin", "--namespace", ns, "-o", "yaml"],
        ["status", "reader", "--context", "team", "-o", "json"],
        ["history", "reader", "--context", "team"],
        ["history", "reader", "-n", ns, "--limit", "2", "-o", "json"],
    )
    assert got_text.code == 0, got_text.err
    assert f"ModelCanary  {ns}/reader  progressing" in got_text.out
    assert "Step         2/4 at weight 25%" in got_text.out
    # what a user sees: no managedFields, times as RFC 3339 (the stored object is unchanged)
    assert json.loads(got_json.out) == shown(server)
    assert yaml.safe_load(got_yaml.out) == shown(server)
    assert "managedFields" in server["metadata"]
    assert status.code == 3  # in progress
    summary = json.loads(status.out)
    assert (summary["outcome"], summary["step"], summary["weight"]) == ("in_progress", 2, 25)
    assert history.code == 0, history.err
    events = [line.split()[1] for line in history.out.splitlines()[1:]]
    assert events[:2] == ["ShadowStarted", "ShadowPassed"]
    assert events[-1] == "Advanced"
    assert last.code == 0, last.err
    assert [e["type"] for e in json.loads(last.out)] == events[-2:]


# --- watching ------------------------------------------------------------------------------------


def test_get_watch_shows_a_change_and_stops_on_ctrl_c(world: World) -> None:
    rollout = world.rollout("watched")
    with world.kubectl.start(
        "canary", "get", "watched", "-w", "-o", "json", "--context", "team"
    ) as run:
        first = json.loads(run.wait_for(lambda line: line.startswith("{")))
        assert (first["status"]["stage"], first["status"]["weight"]) == ("steps", 25)
        world.controller_acts(rollout, "promote")  # step 2 -> 3 while watching
        changed = json.loads(run.wait_for(lambda line: json.loads(line)["status"]["weight"] == 75))
        assert changed["metadata"]["resourceVersion"] == world.version("watched")
        run.interrupt()
        ended = run.finish()
    assert ended.code == 130, ended
    no_traceback(ended)

    with world.kubectl.start("canary", "get", "watched", "-w", "-n", world.ns) as run:
        run.wait_for(lambda line: line.startswith("Step         3/4 at weight 75%"))
        world.controller_acts(rollout, "pause")
        run.wait_for(lambda line: f"{world.ns}/watched  paused" in line)
        run.interrupt()
        ended = run.finish()
    assert ended.code == 130, ended
    no_traceback(ended)


def test_status_watch_follows_the_rollout_to_its_outcome(world: World) -> None:
    rollout = world.rollout("awaited")
    label = f"modelcanary {world.ns}/awaited"
    with world.kubectl.start(
        "canary", "status", "awaited", "--timeout", "10m", "--context", "team"
    ) as run:
        run.wait_for(lambda line: "step 2/4" in line)
        world.controller_acts(rollout, "promote")
        run.wait_for(lambda line: "step 3/4" in line)
        world.controller_acts(rollout, "promote-full")
        ended = run.finish()
    assert ended.code == 0, ended  # promoted
    assert ended.out.splitlines() == [
        f"{label}: progressing, step 2/4 at weight 25%",
        f"{label}: progressing, step 3/4 at weight 75%",
        f"{label}: promoted: candidate nf4 (bitsandbytes-nf4) serves 100%",
    ]
    no_traceback(ended)


def test_status_timeout_passes_while_watching(world: World) -> None:
    rollout = world.rollout("slow")
    label = f"modelcanary {world.ns}/slow"
    with world.kubectl.start(
        "canary", "status", "slow", "-w", "--timeout", "8s", "--context", "team"
    ) as run:
        run.wait_for(lambda line: "step 2/4" in line)
        world.controller_acts(rollout, "promote")  # a change, but no outcome
        run.wait_for(lambda line: "step 3/4" in line)
        ended = run.finish()
    assert ended.code == 3, ended  # --timeout passed while watching
    assert ended.out.splitlines() == [
        f"{label}: progressing, step 2/4 at weight 25%",
        f"{label}: progressing, step 3/4 at weight 75%",
    ]
    assert one_error_line(ended) == (
        f"error: timed out after 8s waiting for {label} (still progressing; exit 3)"
    )


# --- acting: pause, resume, promote, abort, retry -------------------------------------------------


def test_verbs_record_intents_the_controller_acts_on(world: World) -> None:
    rollout = world.rollout("acted")
    ns = world.ns

    def act(*argv: str) -> Ran:
        ran = world.kubectl.canary(*argv)
        no_traceback(ran)
        return ran

    def recorded(verb: str, user: str = "admin") -> str:
        intent_id, last_verb, last_user = world.intents("acted")[-1]
        assert (last_verb, last_user) == (verb, user)  # the kubeconfig context's user
        return intent_id

    paused = act("pause", "acted", "--context", "team")
    assert paused.code == 0, paused.err
    assert paused.out == (
        f"acted ({ns}): pause recorded; the controller applies it at its next reconcile\n"
    )
    assert recorded("pause") not in paused.out
    rollout.consume()
    assert world.obj("acted")["status"]["phase"] == "paused"
    assert act("status", "acted", "--context", "team").code == 4

    before = world.version("acted")
    again = act("pause", "acted", "--context", "team")
    assert again.code == 2  # refused: nothing written
    assert one_error_line(again) == (
        "error: modelcanary 'acted' is already paused; "
        f"resume it with: kubectl canary resume acted -n {ns}"
    )
    assert world.version("acted") == before

    resumed = act("resume", "acted", "-n", ns, "-o", "json")
    assert resumed.code == 0, resumed.err
    shown = json.loads(resumed.out)
    assert (shown["verb"], shown["id"], shown["user"]) == ("resume", recorded("resume"), "admin")
    assert (shown["namespace"], shown["consumed"], shown["phase"]) == (ns, None, None)
    rollout.consume()
    assert world.obj("acted")["status"]["phase"] == "progressing"

    with world.kubectl.start("canary", "promote", "acted", "--wait", "--context", "team") as run:
        run.wait_for(lambda line: "promote recorded" in line)
        rollout.consume()  # the controller acts while the plugin waits
        waited = run.finish()
    assert waited.code == 0, waited
    assert waited.out.splitlines()[-1].startswith(f"acted ({ns}): promote done, now progressing: ")
    assert world.obj("acted")["status"]["weight"] == 75

    aborted = act("abort", "acted", "--context", "team", "-o", "yaml")
    assert aborted.code == 0, aborted.err
    assert yaml.safe_load(aborted.out)["id"] == recorded("abort")
    rollout.consume()
    assert act("status", "acted", "--context", "team").code == 5  # rolled back
    history = act("history", "acted", "--context", "team", "--limit", "1")
    assert history.out.splitlines()[1].split()[1] == "RolledBack"

    retried = act("retry", "acted", "--context", "team")
    assert retried.code == 0, retried.err
    recorded("retry")
    rollout.consume()
    assert world.obj("acted")["status"]["phase"] == "pending"


# --- errors: rights, missing things ---------------------------------------------------------------


def test_a_user_without_rights_gets_the_servers_reason(world: World) -> None:
    world.rollout("guarded")
    ns, before = world.ns, world.version("guarded")
    sa = f'User "system:serviceaccount:{ns}:%s"'
    cases = {
        ("list", "--context", "viewer"): None,  # the Role allows reading
        ("get", "guarded", "--context", "viewer", "-o", "json"): None,
        ("pause", "guarded", "--context", "viewer"): (
            f'modelcanaries.{GROUP} "guarded" is forbidden: {sa % "viewer"} cannot patch '
            f'resource "modelcanaries" in API group "{GROUP}" in the namespace "{ns}"'
        ),
        ("list", "--context", "viewer", "-n", "default"): (
            f"modelcanaries.{GROUP} is forbidden: {sa % 'viewer'} cannot list resource "
            f'"modelcanaries" in API group "{GROUP}" in the namespace "default"'
        ),
        ("get", "guarded", "--context", "nobody"): (
            f'modelcanaries.{GROUP} "guarded" is forbidden: {sa % "nobody"} cannot get '
            f'resource "modelcanaries" in API group "{GROUP}" in the namespace "{ns}"'
        ),
        ("status", "guarded", "-w", "--context", "nobody"): (
            f"modelcanaries.{GROUP} is forbidden: {sa % 'nobody'} cannot list resource "
            f'"modelcanaries" in API group "{GROUP}" in the namespace "{ns}"'
        ),
        ("history", "guarded", "--context", "stranger"): "Unauthorized",
    }
    results = canaries(world, *[list(argv) for argv in cases])
    for (argv, reason), ran in zip(cases.items(), results, strict=True):
        if reason is None:
            assert ran.code == 0, (argv, ran.err)
            no_traceback(ran)
            continue
        assert ran.code == 1, (argv, ran)
        line = one_error_line(ran)
        assert reason in line, (argv, line)
    assert world.version("guarded") == before  # nothing was written
    assert world.intents("guarded") == []


def test_missing_canary_namespace_context_and_server(world: World) -> None:
    world.rollout("present")
    ns = world.ns
    cases = {
        ("get", "nope", "--context", "team"): (
            1,
            f"error: modelcanary 'nope' not found in namespace '{ns}' "
            f"(list them with: kubectl canary list -n {ns})",
        ),
        ("status", "nope", "-w", "--timeout", "1m", "--context", "team"): (
            1,
            f"error: modelcanary 'nope' not found in namespace '{ns}'",
        ),
        ("abort", "nope", "-n", ns): (
            1,
            f"error: modelcanary 'nope' not found in namespace '{ns}'",
        ),
        ("get", "present", "-n", "no-such-namespace"): (
            1,
            "error: modelcanary 'present' not found in namespace 'no-such-namespace'",
        ),
        ("list", "--context", "no-such-context"): (
            1,
            "error: context 'no-such-context' is not in the kubeconfig",
        ),
        ("history", "present", "--context", "gone"): (
            1,
            "error: the API server is unreachable",
        ),
        ("status", "present", "--timeout", "soon", "--context", "team"): (2, "error: --timeout: "),
    }
    results = canaries(world, *[list(argv) for argv in cases])
    for (argv, (code, start)), ran in zip(cases.items(), results, strict=True):
        assert ran.code == code, (argv, ran)
        assert one_error_line(ran).startswith(start), (argv, ran.err)
    empty = world.kubectl.canary("list", "-n", "no-such-namespace")
    assert (empty.code, empty.err) == (
        0,
        "No modelcanaries found in namespace 'no-such-namespace'.\n",
    )
