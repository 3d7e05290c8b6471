"""One canary's detail carries the quality judge's reading in the words ``kubectl canary get``
prints (``CanaryDetail.quality``), for the dashboard to show; null without ``spec.quality``."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from support import dashboard as d

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.view.canary import snapshot
from harness.kube.fake import FakeKube

TOKEN = {"Authorization": f"Bearer {d.ADMIN}"}


def test_the_detail_says_what_the_quality_judge_read_as_get_does() -> None:
    kube = FakeKube()
    start = time.time() - 3 * d.HOUR
    judged = d.put(kube, d.canary("chat-fp8", status=d.judged(start), quality=d.QUALITY))
    d.put(kube, d.canary("plain", status=d.progressing(start)))
    config = ApiConfig(kube=kube, auth=Authenticator(static_token=d.ADMIN))
    with TestClient(create_app(config)) as api:
        got = api.get(f"/api/v1/namespaces/{d.NS}/canaries/chat-fp8", headers=TOKEN).json()
        plain = api.get(f"/api/v1/namespaces/{d.NS}/canaries/plain", headers=TOKEN).json()
    assert got["quality"] == snapshot(judged).quality
    assert got["quality"].startswith(
        "quality: the candidate's mean disagreement 0.02 over 60 pairs is within the tolerance "
        "0.1 (evidence 31.5 >= 1/alpha 20)"
    ), got["quality"]
    assert got["quality"].endswith("; 3 pairs lost unread")
    assert plain["quality"] is None
