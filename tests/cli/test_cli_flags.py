"""``canaryctl controller`` flags of the API: the port (``--metrics-port`` still works) and the
authentication choices."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.api import World, controller_args

from controlplane.cli import controller as cli
from controlplane.errors import UsageError


def test_api_port_and_its_old_name() -> None:
    assert controller_args().api_port == 8080
    assert controller_args("--api-port", "9000").api_port == 9000
    assert controller_args("--metrics-port=9001").api_port == 9001
    assert controller_args("--metrics-address", "127.0.0.1").api_address == "127.0.0.1"


def test_review_off_needs_a_static_token(tmp_path: Path) -> None:
    world = World(0.0, tmp_path)
    args = controller_args("--api-token-review", "off")
    with pytest.raises(UsageError, match="--api-token-review=off needs --api-token-file"):
        cli.api_app(args, world.kube, world.controller, world.metrics)


@pytest.mark.parametrize("content", ["", "  \n"])
def test_empty_token_file_is_a_usage_error(tmp_path: Path, content: str) -> None:
    world = World(0.0, tmp_path)
    token = tmp_path / "empty"
    token.write_text(content)
    args = controller_args("--api-token-file", str(token))
    with pytest.raises(UsageError, match=f"--api-token-file: {token} is empty"):
        cli.api_app(args, world.kube, world.controller, world.metrics)


def test_missing_token_file_is_a_usage_error(tmp_path: Path) -> None:
    world = World(0.0, tmp_path)
    args = controller_args("--api-token-file", str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="cannot read"):
        cli.api_app(args, world.kube, world.controller, world.metrics)


def test_bad_cache_duration(tmp_path: Path) -> None:
    world = World(0.0, tmp_path)
    args = controller_args("--api-auth-cache", "soon")
    with pytest.raises(UsageError, match="--api-auth-cache"):
        cli.api_app(args, world.kube, world.controller, world.metrics)


def test_every_controller_flag_has_help_and_shows_its_default() -> None:
    """Issue #41: many controller flags had no help text or default shown."""
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    controller = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["controller"]
    text = controller.format_help()
    for action in controller._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, action.option_strings
        if action.default not in (None, [], False):
            shown = controller._get_formatter()._get_help_string(action) or ""
            assert "default" in shown, action.option_strings
    assert "--lease-duration DURATION" in text
    assert "(default: 15s)" in text
    assert "(default: 30m)" in text  # --progress-deadline


def test_crash_loop_restarts_reach_the_settings_and_refuse_less_than_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.settings_from(controller_args()).crash_loop_restarts == 3
    assert cli.settings_from(controller_args("--crash-loop-restarts=5")).crash_loop_restarts == 5
    for bad in ("0", "-1", "three"):
        with pytest.raises(SystemExit) as caught:
            controller_args(f"--crash-loop-restarts={bad}")
        assert caught.value.code == 2
        assert "is not a whole number of restarts, 1 or more" in capsys.readouterr().err
