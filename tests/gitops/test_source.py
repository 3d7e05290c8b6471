"""The git source: real repositories in, FakeKube objects out."""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.gitops_world import (
    CANDIDATE_FP8,
    CANDIDATE_NF4,
    Clone,
    Remote,
    canary_file,
    model_of,
    request_for,
    rolled_back,
)

from controlplane.errors import Problem
from controlplane.gitops.source import (
    COMMIT_ANNOTATION,
    DIGEST_ANNOTATION,
    FIELD_MANAGER,
    GitSource,
    SyncReport,
)
from controlplane.gitops.writeback import GitWriteBack
from controlplane.kube.client import Ref
from controlplane.rollout.state import spec_hash
from harness.kube.fake import FakeKube

pytestmark = pytest.mark.binary

API = "canary.controlplane.dev/v1alpha1"
NS = "ml-serving"
SECTION = "  gitWriteBack: {}\n"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata: {a: b}\n"


def get(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.get(Ref(API, "ModelCanary", NS, name))


@pytest.fixture
def dev(remote: Remote) -> Clone:
    clone = remote.clone("dev")
    clone.write("canary/support.yml", canary_file(CANDIDATE_FP8, SECTION))
    clone.write("canary/notes/configmap.yaml", CONFIGMAP)
    clone.write("canary/README.md", "not YAML: ignored\n")
    clone.write("elsewhere/x.yml", "kind: ModelCanary\nnot: [valid")
    clone.commit("canaries")
    clone.push()
    return clone


def source(kube: FakeKube, remote: Remote, tmp_path: Path, **kw: Any) -> GitSource:
    return GitSource(
        kube, remote.url, "canary/", "main", 3600.0, cache_dir=tmp_path / "cache", **kw
    )


def test_applies_valid_canaries_with_source_annotations(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    report = source(kube, remote, tmp_path).sync_once()

    assert report.applied == ("ml-serving/summarizer", "ml-serving/support-triage")
    assert report.invalid == {}
    assert report.errors == ()
    assert not report.skipped
    obj = get(kube, "support-triage")
    expected = model_of(canary_file(CANDIDATE_FP8, SECTION))
    assert obj["spec"]["candidate"] == {
        "name": "fp8",
        "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        "quantization": "fp8",
        "gpu": "nvidia-l40s",
    }
    assert obj["spec"]["stable"]["replicas"] == expected.spec.stable.replicas
    assert obj["metadata"]["labels"] == {"team": "ml-platform"}
    ann = obj["metadata"]["annotations"]
    assert ann["canary.controlplane.dev/source"] == f"{remote.url}#canary/support.yml@main"
    assert ann[COMMIT_ANNOTATION] == remote.tip() == report.commit
    assert len(ann[DIGEST_ANNOTATION]) == 16
    assert [c.method for c in kube.calls].count("apply") == 2
    assert kube.list("v1", "ConfigMap") == []  # other kinds are not ours to apply


def test_restarts_and_unrelated_commits_do_not_rewrite(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    src = source(kube, remote, tmp_path)
    src.sync_once()
    version = get(kube, "support-triage")["metadata"]["resourceVersion"]
    kube.reset_calls()

    assert src.sync_once().skipped  # the branch did not move
    restarted = source(kube, remote, tmp_path).sync_once()
    assert restarted.unchanged == ("ml-serving/summarizer", "ml-serving/support-triage")
    dev.write("canary/README.md", "still not YAML\n")
    dev.commit("docs")
    dev.push()
    moved = src.sync_once()
    assert moved.applied == ()
    assert len(moved.unchanged) == 2
    assert kube.count("apply") == 0
    assert get(kube, "support-triage")["metadata"]["resourceVersion"] == version


def test_a_new_commit_updates_the_object(tmp_path: Path, remote: Remote, dev: Clone) -> None:
    kube = FakeKube()
    src = source(kube, remote, tmp_path)
    src.sync_once()
    dev.write("canary/support.yml", canary_file(CANDIDATE_NF4, SECTION))
    sha = dev.commit("Try nf4")
    dev.push()

    report = src.sync_once()

    assert report.applied == ("ml-serving/support-triage",)
    obj = get(kube, "support-triage")
    assert obj["spec"]["candidate"]["quantization"] == "bitsandbytes-nf4"
    assert obj["spec"]["candidate"]["replicas"] == 1
    assert obj["metadata"]["annotations"][COMMIT_ANNOTATION] == sha
    assert get(kube, "summarizer")["metadata"]["annotations"][COMMIT_ANNOTATION] != sha


def test_an_invalid_file_changes_nothing_and_is_reported_with_file_and_line(
    tmp_path: Path, remote: Remote, dev: Clone, caplog: pytest.LogCaptureFixture
) -> None:
    kube = FakeKube()
    alerts: list[tuple[str, list[Problem]]] = []
    src = source(kube, remote, tmp_path, on_invalid=lambda f, p: alerts.append((f, p)))
    src.sync_once()
    before = get(kube, "support-triage")
    bad = canary_file(CANDIDATE_NF4, SECTION).replace("- weight: 50\n", "- weight: 2\n")
    line = bad.splitlines().index("    - weight: 2") + 1
    dev.write("canary/support.yml", bad)
    dev.write(
        "canary/more.yml",
        canary_file(CANDIDATE_FP8, SECTION, other=False).replace(
            "name: support-triage\n", "name: classifier\n", 1
        ),
    )
    dev.commit("a bad weight, and a new canary")
    dev.push()
    caplog.set_level(logging.ERROR)

    report = src.sync_once()

    [problem] = report.invalid["canary/support.yml"]
    assert (problem.file, problem.line, problem.path) == (
        "canary/support.yml",
        line,
        "spec.steps[1].weight",
    )
    assert report.applied == ("ml-serving/classifier",)  # other files still sync
    after = get(kube, "support-triage")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert f"canary/support.yml:{line}: spec.steps[1].weight: " in caplog.text
    events = [e for e in kube.list("v1", "Event", NS) if e["reason"] == "GitSyncFailed"]
    assert {e["involvedObject"]["name"] for e in events} == {"support-triage", "summarizer"}
    assert all(e["type"] == "Warning" for e in events)
    assert f"canary/support.yml:{line}: spec.steps[1].weight" in events[0]["message"]
    assert [(f, [p.line for p in ps]) for f, ps in alerts] == [("canary/support.yml", [line])]

    # fixing the file applies it
    dev.write("canary/support.yml", canary_file(CANDIDATE_NF4, SECTION))
    dev.commit("fix")
    dev.push()
    fixed = src.sync_once()
    assert fixed.invalid == {}
    assert "ml-serving/support-triage" in fixed.applied


def test_a_yaml_error_is_reported_and_nothing_is_pruned(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    src = source(kube, remote, tmp_path, prune=True)
    src.sync_once()
    dev.write("canary/support.yml", "apiVersion: canary.controlplane.dev/v1alpha1\nkind: [\n")
    dev.commit("broken")
    dev.push()
    report = src.sync_once()
    [problem] = report.invalid["canary/support.yml"]
    assert problem.format().startswith("canary/support.yml:3: invalid YAML")
    assert report.pruned == ()
    assert get(kube, "support-triage")["spec"]["candidate"]["name"] == "fp8"


def test_removed_files_are_pruned_only_when_asked(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    keep = source(kube, remote, tmp_path)
    keep.sync_once()
    dev.write("canary/support.yml", canary_file(CANDIDATE_FP8, SECTION, other=False))
    dev.commit("drop the summarizer")
    dev.push()

    report = keep.sync_once()
    assert report.orphaned == ("ml-serving/summarizer",)
    assert report.pruned == ()
    assert get(kube, "summarizer")

    prune = source(kube, remote, tmp_path / "p", prune=True)
    pruned = prune.sync_once()
    assert pruned.pruned == ("ml-serving/summarizer",)
    assert [o["metadata"]["name"] for o in kube.list(API, "ModelCanary", NS)] == ["support-triage"]


def test_objects_of_another_tool_are_not_taken_over(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    kube = FakeKube()
    argo = model_of(canary_file(CANDIDATE_FP8, SECTION)).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    argo["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "app:x/ModelCanary:y/z"}
    kube.create(argo)
    report = source(kube, remote, tmp_path).sync_once()
    assert report.applied == ("ml-serving/summarizer",)
    assert report.errors == (
        "ml-serving/support-triage: ml-serving/support-triage is managed by Argo CD: "
        "not taking it over",
    )


def test_the_webhook_trigger_syncs_at_once(
    tmp_path: Path, remote: Remote, dev: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = FakeKube()
    # the poll timer never fires: after the first sync, only trigger() can start another one
    src = GitSource(kube, remote.url, "canary/", "main", math.inf, cache_dir=tmp_path / "cache")
    events: list[str] = []
    sync_once = src.sync_once

    def recorded(*, force: bool = False) -> SyncReport:
        events.append("sync")
        return sync_once(force=force)

    monkeypatch.setattr(src, "sync_once", recorded)
    stop = threading.Event()
    runner = threading.Thread(target=src.run, args=(stop,), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while src.last_report is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src.last_report is not None
        dev.write("canary/support.yml", canary_file(CANDIDATE_NF4, SECTION))
        sha = dev.commit("Try nf4")
        dev.push()
        events.append("trigger")
        src.trigger()
        # the sync applies the objects, then keeps its report: wait for both (a loaded CI
        # machine once ran this check between the two)
        while time.monotonic() < deadline:
            applied = get(kube, "support-triage")["metadata"]["annotations"][COMMIT_ANNOTATION]
            if applied == sha and src.last_report.commit == sha:
                break
            time.sleep(0.05)
        assert get(kube, "support-triage")["spec"]["candidate"]["name"] == "nf4"
        # the start-up sync, then the one the push's trigger started: no poll in between or after
        assert events == ["sync", "trigger", "sync"]
        assert src.last_report.commit == sha
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_source_then_write_back_then_source_round_trip(
    tmp_path: Path, remote: Remote, dev: Clone
) -> None:
    """The git source applies nf4; it fails; write-back reverts git; the source applies fp8."""
    kube = FakeKube()
    src = source(kube, remote, tmp_path)
    dev.write("canary/support.yml", canary_file(CANDIDATE_NF4, SECTION))
    dev.commit("Try nf4")
    dev.push()
    src.sync_once()
    obj = get(kube, "support-triage")
    request = request_for(remote.show("canary/support.yml"), obj["metadata"]["annotations"])
    assert request.spec_hash == spec_hash(model_of(remote.show("canary/support.yml")))
    assert rolled_back(request.spec_hash).stage == "rolled_back"

    result = GitWriteBack(kube, tmp_path / "wb").write_back(request)

    assert result.status == "committed", result.message
    report = src.sync_once()
    assert report.applied == ("ml-serving/support-triage",)
    assert get(kube, "support-triage")["spec"]["candidate"]["name"] == "fp8"
    managers = {c.method for c in kube.calls}
    assert "apply" in managers
    assert FIELD_MANAGER == "canary-git-source"
