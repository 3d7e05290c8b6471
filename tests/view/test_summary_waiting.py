"""The API's summary of a pending canary says why it has not started (``status.waiting``)."""

from __future__ import annotations

from controlplane.view.canary import summary


def test_pending_reason_is_the_wait() -> None:
    obj = {
        "metadata": {"namespace": "ml", "name": "c"},
        "status": {"phase": "pending", "waiting": "the candidate was not ready: OOMKilled"},
    }
    assert summary(obj)["reason"] == "the candidate was not ready: OOMKilled"
    obj["status"]["reason"] = {"message": "aborted by alice"}
    assert summary(obj)["reason"] == "aborted by alice"
