"""``canaryctl completion bash|zsh``: a script naming every verb and flag, valid bash, and
completing as a user would see it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import RunCli

from controlplane.cli.main import VERBS, build_parser


def _flags_by_verb() -> dict[str, list[str]]:
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if a.choices and "list" in a.choices)
    assert isinstance(sub.choices, dict)
    return {
        verb: [o for action in p._actions for o in action.option_strings]
        for verb, p in sub.choices.items()
    }


def test_bash_script_names_every_verb_and_flag(run_cli: RunCli) -> None:
    result = run_cli("completion", "bash")
    assert result.code == 0, result.err
    script = result.out
    assert "complete -o default -F _canaryctl canaryctl kubectl-canary" in script
    for verb in VERBS:
        assert f"        {verb})\n" in script, verb
    for verb, flags in _flags_by_verb().items():
        branch = script.split(f"        {verb})\n", 1)[1].split("            ;;", 1)[0]
        for flag in flags:
            assert flag in branch, (verb, flag)
    assert "-o|--output) COMPREPLY=($(compgen -W 'text json yaml'" in script
    assert '--kubeconfig) COMPREPLY=($(compgen -f -- "$cur"))' in script


def test_zsh_script_is_the_bash_function_through_bashcompinit(run_cli: RunCli) -> None:
    result = run_cli("completion", "zsh")
    assert result.code == 0, result.err
    assert result.out.startswith("#compdef canaryctl kubectl-canary\n")
    assert "bashcompinit" in result.out
    assert "_canaryctl() {" in result.out
    assert "complete -o default -F _canaryctl canaryctl kubectl-canary" in result.out


def test_unknown_shell_is_a_usage_error(run_cli: RunCli) -> None:
    result = run_cli("completion", "fish")
    assert result.code == 2
    assert "invalid choice: 'fish'" in result.err


COMPLETE = """
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMPREPLY=()
_canaryctl
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.mark.binary
@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_script_is_valid_shell(shell: str, run_cli: RunCli, tmp_path: Path) -> None:
    program = shutil.which(shell)
    if program is None:
        pytest.skip(f"no {shell} on PATH")
    path = tmp_path / f"canaryctl.{shell}"
    path.write_text(run_cli("completion", shell).out)
    checked = subprocess.run([program, "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.binary
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["canaryctl", "sta"], ["status"]),
        (["canaryctl", "status", "x", "-o", ""], ["text", "json", "yaml"]),
        (["kubectl-canary", "get", "x", "--wa"], ["--watch"]),
        (["canaryctl", "completion", ""], ["bash", "zsh"]),
        (["canaryctl", "promote", "x", "--fu"], ["--full"]),
    ],
)
def test_bash_completes_what_a_user_types(
    words: list[str], expected: list[str], run_cli: RunCli, tmp_path: Path
) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on PATH")
    path = tmp_path / "canaryctl.bash"
    path.write_text(run_cli("completion", "bash").out)
    done = subprocess.run(
        [bash, "-c", COMPLETE, "complete", str(path), *words], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected
