"""The controller's --git-* flags build the write-back notifier and the git source."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import pytest
from support.gitops_world import CANDIDATE_FP8, Remote, canary_file

from controlplane.errors import UsageError
from controlplane.gitops.options import add_arguments, build
from harness.kube.fake import FakeKube


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_without_a_repo_only_write_back_is_built(tmp_path: Path) -> None:
    parts = build(parse("--git-cache-dir", str(tmp_path)), FakeKube())
    assert parts.source is None
    assert parts.on_git_push is None
    assert not parts.write_back.on_abort


@pytest.mark.binary
def test_flags_reach_the_source_and_the_webhook_triggers_it(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "host")
    dev = remote.clone("dev")
    dev.write("deploy/canaries/support.yml", canary_file(CANDIDATE_FP8, "", other=False))
    dev.commit("add")
    dev.push()
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    args = parse(
        "--git-repo",
        remote.url,
        "--git-path",
        "deploy/canaries",
        "--git-interval",
        "1h",
        "--git-prune",
        "--git-token-file",
        str(token),
        "--git-cache-dir",
        str(tmp_path / "c"),
        "--git-write-back-on-abort",
        "--github-api-url",
        "http://127.0.0.1:1",
    )
    kube = FakeKube()
    parts = build(args, kube)
    assert parts.source is not None
    assert parts.on_git_push == parts.source.trigger
    assert parts.source.interval_s == 3600
    assert parts.source.prune
    assert parts.source.repo.credentials is not None
    assert parts.source.repo.credentials.token == "t0ken"
    assert parts.write_back.on_abort
    assert parts.write_back.reverter.api_urls == {"github": "http://127.0.0.1:1"}
    stop = threading.Event()
    parts.start(stop)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not kube.list(
            "canary.controlplane.dev/v1alpha1", "ModelCanary"
        ):
            time.sleep(0.05)
        assert [
            o["metadata"]["name"]
            for o in kube.list("canary.controlplane.dev/v1alpha1", "ModelCanary")
        ] == ["support-triage"]
    finally:
        stop.set()
        parts.close()


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    repo = "https://git.example/team/models.git"
    with pytest.raises(UsageError, match="--git-interval"):
        build(parse("--git-repo", repo, "--git-interval", "5"), FakeKube())
    with pytest.raises(UsageError, match="--git-token-file: cannot read"):
        build(parse("--git-repo", repo, "--git-token-file", str(tmp_path / "no")), FakeKube())


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///srv/git/models.git", "file:// git URLs are not used"),
        ("http://git.example/models.git", "http:// git URLs are not used"),
        ("git://git.example/models.git", "git:// git URLs are not used"),
        ("/srv/git/models.git", "is not a git URL"),
        ("ext::sh -c touch% /tmp/x", "is not a git URL"),
        ("ssh://-oProxyCommand=x/models.git", "is not a ssh git URL"),
    ],
)
def test_git_repo_takes_only_https_and_ssh(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(UsageError, match=f"--git-repo: .*{says}"):
        build(parse("--git-repo", url, "--git-cache-dir", str(tmp_path)), FakeKube())


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example/team/models.git",
        "ssh://git@git.example:2222/team/models.git",
        "git@github.com:team/models.git",
    ],
)
def test_git_repo_takes_https_ssh_and_scp_like(tmp_path: Path, url: str) -> None:
    parts = build(parse("--git-repo", url, "--git-cache-dir", str(tmp_path)), FakeKube())
    assert parts.source is not None
    assert parts.source.repo_url == url
