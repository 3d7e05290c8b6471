"""``kubectl canary list`` and ``history``, and how the namespace and context are chosen."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from support.cli import RunCli
from support.cli_rollouts import NAME, NS, Clock, Rollout, scenario

from controlplane.cli.cluster import Runtime, context_info, kubeconfig_paths
from controlplane.cli.main import main
from controlplane.cli.output import shown
from controlplane.operations import get_canary
from controlplane.view.canary import human
from harness.kube.fake import FakeKube


@pytest.fixture
def fleet(kube: FakeKube, clock: Clock) -> None:
    scenario("progressing", kube, clock)
    Rollout(kube, clock, name="summarizer").start().intent("abort")
    Rollout(kube, clock, name="translator", namespace="team-a").start(ready=False)


def test_list_a_namespace(fleet: None, run_cli: RunCli) -> None:
    result = run_cli("list", "-n", NS)
    assert result.code == 0
    variants = "bf16 (none)   nf4 (bitsandbytes-nf4)"
    assert result.out.splitlines() == [
        "NAME             PHASE         STEP   WEIGHT   STABLE        CANDIDATE                AGE",
        f"summarizer       rolled_back   -      0%       {variants}   1s",
        f"support-triage   progressing   2/4    25%      {variants}   3d1h",
    ]


def test_list_all_namespaces(fleet: None, run_cli: RunCli) -> None:
    result = run_cli("list", "-A")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "NAMESPACE", "NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANDIDATE", "AGE",
    ]  # fmt: skip
    assert [line.split()[:3] for line in lines[1:]] == [
        ["ml-serving", "summarizer", "rolled_back"],
        ["ml-serving", "support-triage", "progressing"],
        ["team-a", "translator", "pending"],
    ]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_output_is_a_list_of_the_objects(
    fmt: str, fleet: None, kube: FakeKube, run_cli: RunCli
) -> None:
    result = run_cli("list", "-n", NS, "-o", fmt)
    assert result.code == 0
    parsed = json.loads(result.out) if fmt == "json" else YAML(typ="safe").load(result.out)
    assert parsed["kind"] == "List"
    assert parsed["items"] == [shown(get_canary(kube, NS, n)) for n in ("summarizer", NAME)]


def test_empty_namespace_is_not_an_error(fleet: None, run_cli: RunCli) -> None:
    result = run_cli("list", "-n", "empty")
    assert (result.code, result.out) == (0, "")
    assert "No modelcanaries found in namespace 'empty'." in result.err


def test_all_namespaces_and_a_namespace_exclude_each_other(run_cli: RunCli) -> None:
    result = run_cli("list", "-A", "-n", NS)
    assert result.code == 2
    assert "-A/--all-namespaces and -n/--namespace exclude each other" in result.err


def _kubeconfig(path: Path) -> Path:
    path.write_text(
        "current-context: dev\n"
        "contexts:\n"
        "- name: dev\n  context: {cluster: c, user: dana, namespace: team-a}\n"
        "- name: prod\n  context: {cluster: c, user: erin, namespace: ml-serving}\n"
        "- name: bare\n  context: {cluster: c, user: erin}\n",
        encoding="utf-8",
    )
    return path


def test_namespace_comes_from_the_context(fleet: None, run_cli: RunCli, tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(_kubeconfig(tmp_path / "config"))}
    assert [line.split()[0] for line in run_cli("list", environ=env).out.splitlines()[1:]] == [
        "translator"
    ]
    prod = run_cli("list", "--context", "prod", environ=env).out
    assert "support-triage" in prod
    assert "translator" not in prod
    bare = run_cli("list", "--context", "bare", environ=env)
    assert "namespace 'default'" in bare.err  # a context without a namespace: default
    explicit = run_cli("list", "--kubeconfig", str(tmp_path / "config"), "--context", "prod")
    assert "support-triage" in explicit.out


def test_kubeconfig_merge_first_file_wins(tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.write_text("contexts:\n- name: dev\n  context: {namespace: from-a}\n", encoding="utf-8")
    second = _kubeconfig(tmp_path / "b")
    broken = tmp_path / "broken"
    broken.write_text("{[", encoding="utf-8")
    paths = kubeconfig_paths(None, {"KUBECONFIG": f"{broken}:{first}:{second}:/nonexistent"})
    info = context_info(paths, None)
    assert (info.name, info.namespace, info.user) == ("dev", "from-a", None)
    assert kubeconfig_paths(None, {"HOME": "/home/u"}) == [Path("/home/u/.kube/config")]
    assert kubeconfig_paths("x", {"KUBECONFIG": "y"}) == [Path("x")]


def test_history_table(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    scenario("rolled_back", kube, clock)
    result = run_cli("history", NAME, "-n", NS)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "STEP", "WEIGHT", "MESSAGE"]
    assert lines[1] == (
        "2026-09-21T14:13:20Z   ShadowStarted   0      0%       mirroring all traffic to nf4"
    )
    assert [line.split()[1] for line in lines[1:]] == [
        "ShadowStarted", "ShadowPassed", "StepStarted", "Breached", "RolledBack",
    ]  # fmt: skip
    assert lines[-1].endswith(
        "RolledBack      1      0%       latency 412.3ms > 300ms over 5m at step 1"
    )


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_history_output_parses_back(
    fmt: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("rolled_back", kube, clock)
    result = run_cli("history", NAME, "-n", NS, "--limit", "2", "-o", fmt)
    parsed = json.loads(result.out) if fmt == "json" else YAML(typ="safe").load(result.out)
    history = get_canary(kube, NS, NAME)["status"]["history"][-2:]
    assert [e["type"] for e in parsed] == [e["type"] for e in history] == ["Breached", "RolledBack"]
    assert parsed[1] == {
        "time": "2026-09-21T14:16:21Z",
        "type": "RolledBack",
        "step": 1,
        "weight": 0,
        "message": history[1]["message"],
    }


def test_history_of_a_new_canary_and_bad_limit(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("new", kube, clock)
    empty = run_cli("history", NAME, "-n", NS)
    assert (empty.code, empty.out) == (0, "")
    assert "has no events yet" in empty.err
    bad = run_cli("history", NAME, "-n", NS, "--limit", "0")
    assert bad.code == 2
    assert "--limit must be 1 or more" in bad.err


def test_help_lists_the_cluster_verbs(run_cli: RunCli, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli("--help")
    assert result.code == 0
    for verb in ("list", "get", "status", "history", "promote", "abort", "pause", "resume"):
        assert f"    {verb} " in result.out
    assert human(273605) == "3d4h"
    assert human(59) == "59s"
    assert human(None) == "-"


def test_only_the_named_verbs_module_is_imported() -> None:
    from controlplane.cli.main import build_parser

    _parser, verbs = build_parser(["list", "-n", "x"])
    assert set(verbs) == {"list"}
    _parser, verbs = build_parser(["pause", "x", "--context", "c"])
    assert set(verbs) == {"promote", "abort", "pause", "resume", "retry"}
    parser, verbs = build_parser(["--help"])
    assert verbs == {}
    assert "    history " in parser.format_help()  # listed by name and help all the same
    parser, verbs = build_parser(["list"])  # a named verb's run builds no other verb's parser
    assert "history" not in parser.format_help()


def test_a_verb_after_a_named_one_is_still_parsed() -> None:
    """``build_parser`` saw ``list``; the words name nothing else, so main's re-parse with
    every verb is only for a verb it did not see (none here)."""
    from controlplane.cli.main import build_parser

    parser, _verbs = build_parser(["list", "-n", "x"])
    args = parser.parse_args(["list", "-n", "x"])
    assert (args.verb, args.namespace) == ("list", "x")


def test_a_closed_stdout_ends_quietly_with_141(
    kube: FakeKube, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario("progressing", kube, clock)

    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", Closed())
    runtime = Runtime(kube=kube, clock=clock, environ={})
    assert main(["list", "-n", NS, "-o", "yaml"], runtime=runtime) == 141


def test_an_unknown_context_is_named_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _kubeconfig(tmp_path / "config")
    runtime = Runtime(environ={"KUBECONFIG": str(config)})  # no client: it would connect
    assert main(["list", "--context", "staging"], runtime=runtime) == 1
    assert capsys.readouterr().err == (
        f"error: context 'staging' is not in the kubeconfig ({config}); "
        "its contexts: bare, dev, prod\n"
    )
