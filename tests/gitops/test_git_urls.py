"""Only ``https://``, ``ssh://`` and scp-like ``user@host:path`` git URLs (issue 33: ``file://``
git URLs were allowed for write-back). The spec refuses another ``spec.gitWriteBack.repo`` with
its path and line (and the CRD's pattern, so the API server refuses it too); a URL that reaches
write-back another way (the source annotation a tenant can set, an Argo CD Application) is
refused before git runs: nothing is read from or pushed to the controller's own disk."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from support.gitops_world import (
    CANDIDATE_NF4,
    Clone,
    Remote,
    canary_file,
    request_for,
    write_back,
)
from test_writeback import FILE, history

from controlplane.errors import GitError
from controlplane.gitops.repo import GitRepo
from controlplane.gitops.writeback import GitWriteBack
from controlplane.spec.git_url import GIT_URL_PATTERN, git_url_problem
from controlplane.validation import check_text

GOOD = [
    "https://github.com/team/models.git",
    "https://x-access-token:t0k@git.example/team/models.git",
    "ssh://git@git.example/team/models.git",
    "ssh://git@git.example:2222/team/models.git",
    "git@github.com:team/models.git",
]
BAD = [
    ("file:///var/cache/canary/write-back/abc.git", "file:// git URLs are not used"),
    ("file://localhost/etc", "file:// git URLs are not used"),
    ("http://git.example/team/models.git", "http:// git URLs are not used"),
    ("git://git.example/team/models.git", "git:// git URLs are not used"),
    ("/var/cache/canary/write-back/abc.git", "is not a git URL"),
    ("./models.git", "is not a git URL"),
    ("ext::sh -c touch% /tmp/pwned", "is not a git URL"),
    ("fd::17", "is not a git URL"),
    ("ssh://-oProxyCommand=touch%20x/models.git", "is not a ssh git URL"),
    ("-oProxyCommand=x@host:models.git", "is not a git URL"),
    ("git@host:-u", "is not a git URL"),
]


@pytest.mark.parametrize("url", GOOD)
def test_https_ssh_and_scp_like_are_git_urls(url: str) -> None:
    assert git_url_problem(url) is None
    assert re.fullmatch(GIT_URL_PATTERN, url)  # the CRD's pattern says the same


@pytest.mark.parametrize(("url", "says"), BAD)
def test_other_urls_are_refused_everywhere(tmp_path: Path, url: str, says: str) -> None:
    problem = git_url_problem(url)
    assert problem is not None
    assert says in problem
    assert not re.fullmatch(GIT_URL_PATTERN, url)
    with pytest.raises(GitError, match=re.escape(says)):
        GitRepo(url, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before any git ran


@pytest.mark.parametrize(("url", "says"), BAD[:3])
def test_the_spec_refuses_them_with_path_and_line(url: str, says: str) -> None:
    text = canary_file(CANDIDATE_NF4, write_back(url, FILE))
    found = [
        (p.path, p.line, p.message)
        for p in check_text(text, "canary.yml")
        if p.path.startswith("spec.gitWriteBack")
    ]
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith("repo:"))
    assert len(found) == 1, found
    assert found[0][:2] == ("spec.gitWriteBack.repo", line)
    assert says in found[0][2]


@pytest.mark.binary
def test_a_file_url_in_the_source_annotation_reaches_no_git(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    history(dev, write_back())  # no repo in the spec: the annotation would say where
    tip = remote.tip()
    local = remote.dir.as_uri()  # the very repository, but as a path on the controller's disk
    source = {"canary.controlplane.dev/source": f"{local}#{FILE}@main"}
    cache = tmp_path / f"cache-{time.monotonic_ns()}"
    result = GitWriteBack(None, cache).write_back(request_for(remote.show(FILE), source))
    assert result.status == "failed"
    assert "file:// git URLs are not used" in result.message
    assert remote.tip() == tip
    assert not list(cache.rglob("*.git"))
    # the same file through the https URL of the same repository is written back
    source = {"canary.controlplane.dev/source": f"{remote.url}#{FILE}@main"}
    done = GitWriteBack(None, cache).write_back(request_for(remote.show(FILE), source))
    assert done.status == "committed", done.message
    assert remote.tip() != tip
