"""Git write-back against real repositories: a bare remote, clones, and the ``git`` binary."""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.gitops_world import (
    CANDIDATE_FP8,
    CANDIDATE_NF4,
    HEADER,
    OTHER_DOC,
    TAIL,
    Clone,
    Remote,
    as_object,
    canary_file,
    git,
    model_of,
    request_for,
    rolled_back,
    write_back,
)

from controlplane.gitops.repo import Identity
from controlplane.gitops.writeback import GitWriteBack, WriteBackRequest, WriteBackResult
from controlplane.kube.client import Ref
from controlplane.rollout.state import Event, Reason, spec_hash
from harness.kube.fake import FakeKube
from harness.servers import git_https
from harness.servers.hosting_api import HostingApi

pytestmark = pytest.mark.binary

FILE = "canary/support-triage.yml"
NS, NAME = "ml-serving", "support-triage"


def history(dev: Clone, section: str) -> str:
    """fp8 candidate, then the failing nf4, then an unrelated edit of the other document."""
    dev.write(FILE, canary_file(CANDIDATE_FP8, section))
    dev.commit("Add support-triage with an fp8 candidate")
    dev.write(FILE, canary_file(CANDIDATE_NF4, section))
    dev.commit("Try nf4")
    dev.write(FILE, canary_file(CANDIDATE_NF4, section).replace("weight: 10,", "weight: 20,"))
    third = dev.commit("summarizer: start at 20%")
    dev.push()
    return third


ROLLED = Event("RolledBack", 1.0, 1, 0)


def rolled_back_canary(
    remote: Remote, dev: Clone, kube: FakeKube | None = None
) -> tuple[Any, dict[str, Any]]:
    """The history of :func:`history` pushed, and the canary as the controller holds it (stored
    in ``kube`` when given) after its nf4 candidate was rolled back."""
    history(dev, write_back(remote.url, FILE))
    canary = model_of(remote.show(FILE))
    obj = as_object(canary)
    return canary, kube.create(obj) if kube is not None else obj


def written_once(remote: Remote) -> bool:
    subjects = remote.log(fmt="%s")
    return subjects.count("Roll back candidate nf4 of ml-serving/support-triage") == 1


def make(tmp_path: Path, kube: FakeKube | None = None, **kw: Any) -> GitWriteBack:
    return GitWriteBack(
        kube,
        tmp_path / f"cache-{time.monotonic_ns()}",
        author=Identity("Canary Bot", "canary-bot@example.com"),
        **kw,
    )


def test_commit_restores_the_previous_candidate_and_nothing_else(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    third = history(dev, section)
    failed = canary_file(CANDIDATE_NF4, section).replace("weight: 10,", "weight: 20,")
    request = request_for(failed)

    result = make(tmp_path).write_back(request)

    assert result.status == "committed", result.message
    assert result.path == FILE
    assert result.branch == "main"
    assert result.attempts == 1
    expected = (
        HEADER + CANDIDATE_FP8 + TAIL + section + OTHER_DOC.replace("weight: 10,", "weight: 20,")
    )
    assert remote.show(FILE) == expected
    assert remote.tip() == result.commit
    assert git(remote.dir, "rev-parse", "main^").strip() == third  # on top, nothing rewritten
    assert git(remote.dir, "diff", "--name-only", "main^", "main").split() == [FILE]
    author = git(remote.dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip()
    assert author == "Canary Bot <canary-bot@example.com>|Canary Bot <canary-bot@example.com>"
    message = git(remote.dir, "log", "-1", "--format=%B").strip()
    lines = message.splitlines()
    assert lines[0] == "Roll back candidate nf4 of ml-serving/support-triage"
    assert "latency 0.412 above 0.3 over 5m at step 1" in message
    assert "Try nf4" not in message  # restored from the commit before it:
    assert "'Add support-triage with an fp8 candidate'" in message
    assert (
        "Reason: kind breach; metric latency; check steps[0].rollbackOn[0]; value 0.412; "
        "threshold above 0.3; window 5m; step 1"
    ) in lines
    assert lines[-1] == f"Canary-Rollback: ml-serving/support-triage {request.spec_hash}"
    trailers = git(
        remote.dir, "log", "-1", "--format=%(trailers:key=Canary-Rollback,valueonly)"
    ).strip()
    assert trailers == f"ml-serving/support-triage {request.spec_hash}"


def test_a_file_created_with_the_failed_candidate_gets_stable(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    text = canary_file(CANDIDATE_NF4, section, other=False)
    dev.write(FILE, text)
    dev.commit("Add support-triage")
    dev.push()

    result = make(tmp_path).write_back(request_for(text))

    assert result.status == "committed", result.message
    stable_copy = (
        "  candidate:                        # what we want to roll out\n"
        "    name: nf4\n"
        "    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct\n"
        "    quantization: none\n"
        "    gpu: nvidia-l40s\n"
        "    replicas: 2\n"
    )
    assert remote.show(FILE) == HEADER + stable_copy + TAIL + section
    assert "spec.candidate now equals spec.stable" in git(remote.dir, "log", "-1", "--format=%B")


def test_a_push_conflict_is_retried_on_the_new_tip_and_both_commits_survive(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    history(dev, section)
    failed = remote.show(FILE)
    other = remote.clone("colleague")
    pushes: list[int] = []

    def colleague_pushes_first(attempt: int) -> None:
        pushes.append(attempt)
        if attempt == 1:
            other.write("README.md", "models, now with a README line\n")
            other.commit("README: one more line")
            other.push()

    result = make(tmp_path, before_push=colleague_pushes_first).write_back(request_for(failed))

    assert result.status == "committed", result.message
    assert result.attempts == 2
    assert pushes == [1, 2]
    subjects = remote.log(fmt="%s")
    assert subjects[:2] == [
        "Roll back candidate nf4 of ml-serving/support-triage",
        "README: one more line",
    ]
    assert remote.show("README.md") == "models, now with a README line\n"
    assert "name: fp8" in remote.show(FILE)


def test_a_concurrent_new_candidate_is_never_clobbered(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    history(dev, section)
    failed = remote.show(FILE)
    other = remote.clone("colleague")
    newer = failed.replace("quantization: bitsandbytes-nf4", "quantization: bitsandbytes-int8")

    def colleague_replaces_the_candidate(attempt: int) -> None:
        if attempt == 1:
            other.write(FILE, newer)
            other.commit("Try int8 instead")
            other.push()

    wb = make(tmp_path, before_push=colleague_replaces_the_candidate)
    result = wb.write_back(request_for(failed))

    assert result.status == "already-reverted"
    assert remote.log(fmt="%s")[0] == "Try int8 instead"
    assert remote.show(FILE) == newer


def test_a_restart_does_not_write_twice(tmp_path: Path, remote: Remote, dev: Clone) -> None:
    section = write_back(remote.url, FILE)
    history(dev, section)
    request = request_for(remote.show(FILE))
    first = make(tmp_path).write_back(request)
    tip = remote.tip()

    again = make(tmp_path).write_back(request)  # a fresh notifier and an empty cache

    assert first.status == "committed"
    assert again.status == "already-written"
    assert again.commit == first.commit
    assert remote.tip() == tip


def test_the_trailer_stops_a_second_write_even_when_the_failed_candidate_is_back(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    history(dev, section)
    request = request_for(remote.show(FILE))
    make(tmp_path).write_back(request)
    dev.pull()
    git(dev.path, "revert", "--no-edit", "HEAD")  # a person deliberately puts nf4 back
    dev.push()
    tip = remote.tip()

    result = make(tmp_path).write_back(request)

    assert result.status == "already-written"
    assert remote.tip() == tip


def test_a_missing_file_or_canary_fails_clearly_and_pushes_nothing(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    history(dev, section)
    tip = remote.tip()
    kube = FakeKube()
    missing = write_back(remote.url, "canary/elsewhere.yml")
    text = canary_file(CANDIDATE_NF4, missing)
    obj = kube.create(as_object(model_of(text)))
    canary = model_of(text)
    state = rolled_back(spec_hash(canary))
    request = WriteBackRequest(NS, NAME, state.spec_hash, canary, state.reason, obj)

    result = make(tmp_path, kube).write_back(request)

    assert result.status == "failed"
    assert result.message == (
        "canary/elsewhere.yml is neither a file nor a directory with YAML files"
    )
    events = kube.list("v1", "Event", NS)
    assert [(e["reason"], e["type"], e["message"]) for e in events] == [
        ("GitWriteBackFailed", "Warning", result.message)
    ]

    other_name = canary_file(CANDIDATE_NF4, write_back(remote.url, FILE)).replace(
        "name: support-triage\n", "name: other-canary\n", 1
    )
    canary = model_of(other_name, "other-canary")
    state = rolled_back(spec_hash(canary))
    request = WriteBackRequest(NS, "other-canary", state.spec_hash, canary, state.reason, {})
    result = make(tmp_path).write_back(request)
    assert result.status == "failed"
    assert result.message == f"{FILE} holds no ModelCanary ml-serving/other-canary"
    assert remote.tip() == tip
    assert remote.branches() == ["main"]


def test_the_source_annotation_names_the_file(tmp_path: Path, remote: Remote, dev: Clone) -> None:
    section = write_back()  # no repo: the annotation says where
    history(dev, section)
    source = {"canary.controlplane.dev/source": f"{remote.url}#{FILE}@main"}
    result = make(tmp_path).write_back(request_for(remote.show(FILE), source))
    assert result.status == "committed", result.message
    assert result.repo == remote.url
    assert result.path == FILE
    assert "name: fp8" in remote.show(FILE)


def test_argocd_tracking_annotation_leads_to_the_application_and_the_file(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back()
    unrelated = canary_file(CANDIDATE_FP8, section, other=False).replace(
        "name: support-triage\n", "name: classifier\n", 1
    )
    dev.write("apps/canaries/a-classifier.yml", unrelated)
    dev.write("apps/canaries/b-support.yaml", canary_file(CANDIDATE_FP8, section))
    dev.write("apps/canaries/notes.txt", "name: support-triage\n")
    dev.commit("Add canaries")
    dev.write("apps/canaries/b-support.yaml", canary_file(CANDIDATE_NF4, section))
    dev.commit("Try nf4")
    dev.push()
    kube = FakeKube()
    kube.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "ml-models", "namespace": "argocd"},
            "spec": {
                "source": {
                    "repoURL": remote.url,
                    "path": "apps/canaries",
                    "targetRevision": "HEAD",
                },
                "destination": {"namespace": NS},
            },
        }
    )
    tracking = {
        "argocd.argoproj.io/tracking-id": (
            "ml-models:canary.controlplane.dev/ModelCanary:ml-serving/support-triage"
        )
    }

    result = make(tmp_path, kube).write_back(
        request_for(remote.show("apps/canaries/b-support.yaml"), tracking)
    )

    assert result.status == "committed", result.message
    assert result.path == "apps/canaries/b-support.yaml"
    assert result.branch == "main"
    assert remote.show("apps/canaries/b-support.yaml") == canary_file(CANDIDATE_FP8, section)
    assert remote.show("apps/canaries/a-classifier.yml") == unrelated
    assert any(c.method == "get" and "Application" in c.target for c in kube.calls)


def test_pull_request_mode_pushes_a_branch_and_calls_the_github_api(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE, mode="pull-request", provider="github") + (
        "    credentialsSecretRef: {name: git-token, key: token}\n"
    )
    history(dev, section)
    base_tip = remote.tip()
    kube = FakeKube()
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "git-token", "namespace": NS},
            "data": {"token": base64.b64encode(b"ghp_s3cret").decode()},
        }
    )
    request = request_for(remote.show(FILE))
    head = f"canary-rollback/ml-serving-support-triage-{request.spec_hash}"
    with HostingApi() as api:
        api.responses.append((201, {"html_url": "https://github.example/team/models/pull/7"}))
        wb = make(tmp_path, kube, api_urls={"github": api.url})
        result = wb.write_back(request)

        assert result.status == "pull-request", result.message
        assert result.url == "https://github.example/team/models/pull/7"
        assert remote.tip() == base_tip  # base untouched
        assert remote.tip(head) == result.commit
        assert "name: fp8" in remote.show(FILE, head)
        [call] = api.requests
        owner_repo = str(remote.dir).strip("/").removesuffix(".git")
        assert call.path == f"/repos/{owner_repo}/pulls"
        assert call.headers["authorization"] == "Bearer ghp_s3cret"
        assert call.body["head"] == head
        assert call.body["base"] == "main"
        assert call.body["title"] == "Roll back candidate nf4 of ml-serving/support-triage"
        assert "latency 0.412 above 0.3" in call.body["body"]
        assert call.body["body"].rstrip().endswith(request.trailer)

        # a restart: the branch is there, GitHub says the PR exists; nothing new is pushed
        api.responses.append(
            (
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"message": "A pull request already exists for x:y."}],
                },
            )
        )
        again = make(tmp_path, kube, api_urls={"github": api.url}).write_back(request)
        assert again.status == "pull-request"
        assert again.commit == result.commit
        assert "already open" in again.message
        assert len(api.requests) == 2
        assert remote.tip(head) == result.commit


def test_pull_request_mode_against_gitlab(tmp_path: Path, remote: Remote, dev: Clone) -> None:
    section = write_back(remote.url, FILE, mode="pull-request", provider="gitlab")
    history(dev, section)
    request = request_for(remote.show(FILE))
    with HostingApi() as api:
        api.responses.append(
            (201, {"web_url": "https://gitlab.example/team/models/-/merge_requests/3"})
        )
        wb = GitWriteBack(
            None,
            tmp_path / "cache",
            api_urls={"gitlab": api.url + "/api/v4"},
            credentials=None,
        )
        result = wb.write_back(request)
        assert result.status == "pull-request", result.message
        [call] = api.requests
        project = str(remote.dir).strip("/").removesuffix(".git").replace("/", "%2F")
        assert call.path == f"/api/v4/projects/{project}/merge_requests"
        assert call.body["source_branch"] == result.branch
        assert call.body["target_branch"] == "main"
        assert call.body["title"].startswith("Roll back candidate nf4")
        assert request.trailer in call.body["description"]


def test_https_token_is_used_through_askpass_and_never_stored(
    tmp_path: Path, remote: Remote, dev: Clone, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-9f8e7d6c5b4a"
    root = tmp_path / "host"
    with git_https.serving(root, "x-access-token", token) as (base, outcomes):
        url = f"{base}/team/models.git"
        section = (
            write_back(url, FILE) + "    credentialsSecretRef: {name: git-token, key: token}\n"
        )
        history(dev, section)
        kube = FakeKube()
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "git-token", "namespace": NS},
                "stringData": {"token": token},
            }
        )
        cache = tmp_path / "cache"
        caplog.set_level(logging.DEBUG)
        wb = GitWriteBack(kube, cache)
        result = wb.write_back(request_for(remote.show(FILE)))

        assert result.status == "committed", result.message
        assert "ok" in outcomes
        assert "name: fp8" in remote.show(FILE)
        # the token is in no file of the cache (config, askpass script, objects) and in no log
        configs = list(cache.glob("*.git/config"))
        assert configs
        assert all(url in c.read_text() for c in configs)
        for path in cache.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
        assert token not in caplog.text
        assert token not in result.message

        # a wrong token fails with a clear, redacted message
        kube.patch(
            Ref("v1", "Secret", NS, "git-token"), {"stringData": {"token": "wrong-token-123"}}
        )
        dev.pull()
        dev.write(FILE, canary_file(CANDIDATE_NF4, section))
        dev.commit("nf4 again")
        dev.push()
        accepted = outcomes.count("ok")
        denied = GitWriteBack(kube, tmp_path / "cache2").write_back(
            request_for(remote.show(FILE), reason=Reason("breach", "x", 0.0, 2))
        )
        # same spec hash as before: the trailer check needs to read the branch, which fails
        assert denied.status == "failed"
        assert "wrong-token-123" not in denied.message
        assert "Authentication failed" in denied.message, denied.message
        assert outcomes.count("ok") == accepted
        assert outcomes[-1] == "denied"


def test_notify_queues_without_blocking_and_filters_reasons(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    section = write_back(remote.url, FILE)
    history(dev, section)
    canary = model_of(remote.show(FILE))
    pushing = threading.Event()  # the worker has reached its push
    release = threading.Event()  # set by the test only: until then the push is held
    held: list[bool] = []  # per push, once it goes on: released by the test (not timed out)

    def before_push(attempt: int) -> None:
        pushing.set()
        held.append(release.wait(30))

    results: list[WriteBackResult] = []
    wb = make(tmp_path, before_push=before_push, on_result=results.append)
    obj = as_object(canary)
    rolled = Event("RolledBack", 1.0, 1, 0, "rolled back")
    aborted = rolled_back(spec_hash(canary), Reason("aborted", "aborted by ann", 1.0, 1))

    wb.notify(obj, canary, aborted, rolled)  # a user's abort: not written back by default
    wb.notify(obj, canary, rolled_back(spec_hash(canary)), Event("Breached", 1.0, 1, 5))
    wb.notify(obj, canary, rolled_back(spec_hash(canary)), rolled)
    assert pushing.wait(30)  # the worker is now held right before its push
    wb.notify(obj, canary, rolled_back(spec_hash(canary)), rolled)  # a duplicate: queued once
    # both calls returned while the push is still held: had notify waited for the push, the push
    # would have gone on only after release.wait gave up, recording False
    assert held == []
    release.set()
    assert wb.wait_idle(30)
    wb.close()
    assert held == [True]
    assert [r.status for r in results] == ["committed"]

    assert GitWriteBack(None, tmp_path / "c", on_abort=True).wants(canary, aborted, rolled)
    no_opt_in = model_of(canary_file(CANDIDATE_NF4, ""))
    assert not wb.wants(no_opt_in, rolled_back(spec_hash(no_opt_in)), rolled)


def test_recover_after_a_restart_writes_back_rolled_back_canaries_once(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    canary, obj = rolled_back_canary(remote, dev, kube)
    obj["status"] = rolled_back(spec_hash(canary)).to_status()
    kube.replace_status(obj)

    results: list[WriteBackResult] = []
    wb = make(tmp_path, kube, on_result=results.append)
    assert wb.recover([NS]) == 1
    assert wb.wait_idle(30)
    wb2 = make(tmp_path, kube, on_result=results.append)
    assert wb2.recover([None]) == 1
    assert wb2.wait_idle(30)
    assert [r.status for r in results] == ["committed", "already-written"]
    assert written_once(remote)
    reasons = [e["reason"] for e in kube.list("v1", "Event", NS)]
    assert reasons == ["GitWriteBack", "GitWriteBack"]


def test_a_rollback_told_again_is_written_back_once_and_a_new_one_is_not_skipped(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    """The write-back sink's delivered record: the reconciler tells the same RolledBack entry
    again (its bookkeeping write conflicted) after the write-back is done, and recovery in the
    same process finds the same entry in the history: neither runs it again (one result, one
    GitWriteBack Event). A later rollback of the same canary is another event: it runs (and
    finds the trailer)."""
    kube = FakeKube()
    canary, obj = rolled_back_canary(remote, dev, kube)
    results: list[WriteBackResult] = []
    wb = make(tmp_path, kube, on_result=results.append)
    rolled = Event("RolledBack", 1_799_990_600.0, 1, 0, "latency 412.3ms > 300ms")
    state = replace(rolled_back(spec_hash(canary)), history=(rolled,))
    obj["status"] = state.to_status()
    obj = kube.replace_status(obj)
    wb.notify(obj, canary, state, rolled)
    assert wb.wait_idle(30)
    wb.notify(obj, canary, state, rolled)  # told again: already done
    assert wb.recover([NS]) == 0  # the same RolledBack entry of the status
    assert wb.wait_idle(30)
    assert [r.status for r in results] == ["committed"]
    reasons = [e["reason"] for e in kube.list("v1", "Event", NS)]
    assert reasons == ["GitWriteBack"]

    later = Event("RolledBack", 1_799_999_000.0, 1, 0, "aborted by ann")
    wb.notify(obj, canary, replace(state, history=(rolled, later)), later)
    assert wb.wait_idle(30)
    wb.close()
    assert [r.status for r in results] == ["committed", "already-written"]
    assert written_once(remote)


def test_a_write_back_that_fails_on_git_is_tried_again_until_it_lands(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    canary, obj = rolled_back_canary(remote, dev, kube)
    away = remote.dir.with_name("moved-away.git")
    remote.dir.rename(away)  # the git host is down: fetch fails

    results: list[WriteBackResult] = []

    def seen(result: WriteBackResult) -> None:
        results.append(result)
        if len(results) == 2:
            away.rename(remote.dir)  # the host is back before the second retry

    wb = make(tmp_path, kube, on_result=seen, retry_s=(0.05, 0.05, 0.05))
    wb.notify(obj, canary, rolled_back(spec_hash(canary)), ROLLED)
    assert wb.wait_idle(60)
    wb.close()
    assert [r.status for r in results] == ["failed", "failed", "committed"]
    assert [r.retry_in for r in results] == [0.05, 0.05, None]
    assert "(retry 1 of 3 in 0.05 s)" in results[0].message
    assert "(retry 2 of 3 in 0.05 s)" in results[1].message
    assert written_once(remote)
    reasons = sorted(e["reason"] for e in kube.list("v1", "Event", NS))
    assert reasons == ["GitWriteBack", "GitWriteBackFailed", "GitWriteBackFailed"]


def test_retries_end_and_a_missing_file_is_not_retried(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    canary, obj = rolled_back_canary(remote, dev)
    remote.dir.rename(remote.dir.with_name("gone.git"))  # down for good
    results: list[WriteBackResult] = []
    wb = make(tmp_path, on_result=results.append, retry_s=(0.01, 0.01))
    wb.notify(obj, canary, rolled_back(spec_hash(canary)), ROLLED)
    assert wb.wait_idle(60)
    assert [r.status for r in results] == ["failed"] * 3
    assert "gave up after 2 retries" in results[-1].message
    assert results[-1].retry_in is None

    results.clear()
    other = Remote(tmp_path / "host2")  # reachable, but the file is not in it
    seed = other.clone("seed")
    seed.write("README.md", "models\n")
    seed.commit("initial")
    seed.push()
    moved = model_of(canary_file(CANDIDATE_NF4, write_back(other.url, "nowhere.yml")))
    wb.notify(as_object(moved), moved, rolled_back(spec_hash(moved)), ROLLED)
    assert wb.wait_idle(60)
    wb.close()
    assert [r.status for r in results] == ["failed"]  # the file is not there: no retry
    assert results[0].retry_in is None
    assert results[0].message == "nowhere.yml is neither a file nor a directory with YAML files"


def test_close_drops_retries_that_are_not_due(tmp_path: Path, remote: Remote, dev: Clone) -> None:
    canary, obj = rolled_back_canary(remote, dev)
    remote.dir.rename(remote.dir.with_name("gone.git"))
    results: list[WriteBackResult] = []
    wb = make(tmp_path, on_result=results.append, retry_s=(3600.0,))
    wb.notify(obj, canary, rolled_back(spec_hash(canary)), ROLLED)
    deadline = time.monotonic() + 30
    while not results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results[0].retry_in == 3600.0
    # allowed half an hour, close does the work due within it; the retry is due in an hour, so
    # close drops it and returns at once; a close that waited for it would still be running
    closing = threading.Thread(target=wb.close, kwargs={"timeout_s": 1800.0}, daemon=True)
    closing.start()
    closing.join(60)  # a wait for the other thread, not a bound on it
    assert not closing.is_alive()
    assert wb.wait_idle(0)
    assert len(results) == 1
