"""Shared builders of the dashboard's browser tests and its load benchmark's fixtures.

Owns: Debian's Chromium launched through Playwright (:func:`browser_context`: never a downloaded
browser, a fresh profile directory each time), the controller's HTTP API served on a loopback port
over a :class:`~harness.kube.fake.FakeKube` (:func:`serve`), ModelCanaries with the statuses a
page must draw (:func:`rolled_back`, :func:`progressing`: history, checks with both variants'
recent values, sequential evidence, gates, capacity), a fleet of them (:func:`fleet`), and axe-core
run in a page (:func:`axe_violations`). Called by ``tests/dashboard/`` and
``bench/dashboard_load.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.api.server import ApiServer
from controlplane.kube.client import Obj, canary_ref
from controlplane.spec.units import status_time
from harness.kube.fake import FakeKube
from support.canaries import canary_dict

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "controlplane" / "api" / "dashboard_assets"
AXE = ROOT / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUP = "canary.controlplane.dev"
ADMIN = "dashboard-admin-token"
NS = "ml-serving"
HOUR = 3600.0


def chromium() -> str:
    """Debian's Chromium (``make browser`` installs it); a clear failure when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("no chromium on PATH: run `make browser` (Debian's chromium package)")
    return found


def built() -> None:
    """Fail clearly when the dashboard is not built (``make dashboard``)."""
    if not (ASSETS / "index.html").exists() or not AXE.exists():
        raise RuntimeError("the dashboard is not built: run `make dashboard`")


@contextmanager
def browser_context(playwright: Any, **options: Any) -> Iterator[Any]:
    """A Chromium context on a fresh ``--user-data-dir``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dashboard-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            **options,
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def serve(kube: FakeKube, *, static_token: str | None = ADMIN) -> Iterator[ApiServer]:
    """The controller's HTTP API over ``kube`` on a loopback port: ``static_token`` may do
    everything; other tokens go to TokenReview and SubjectAccessReview in ``kube``."""
    auth = Authenticator(static_token=static_token, kube=kube, ttl_s=0)
    app = create_app(ApiConfig(kube=kube, auth=auth))
    with ApiServer(app) as server:
        yield server


def token_of(loopback: Any, namespace: str, name: str) -> str:
    """A token of ServiceAccount ``namespace/name`` from the real API server's TokenRequest API."""
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    return str(loopback.request("POST", path, body)["status"]["token"])


def add_user(kube: FakeKube, token: str, user: str, verbs: list[str], namespace: str = NS) -> None:
    """``token`` authenticates as ``user``, who may ``verbs`` modelcanaries (and list them
    everywhere, as a viewer of the whole dashboard)."""
    kube.add_token(token, user)
    kube.grant(
        f"{user}-dashboard",
        verbs=verbs,
        resources=["modelcanaries"],
        api_groups=[GROUP],
        namespace=namespace,
        users=[user],
    )
    kube.grant(
        f"{user}-list",
        verbs=["list", "watch"],
        resources=["modelcanaries"],
        api_groups=[GROUP],
        users=[user],
    )


def _spec() -> dict[str, Any]:
    gpu = "nvidia-l4"
    return {
        "model": {"name": "support-llm", "maxModelLen": 4096},
        "stable": {"name": "bf16", "storageUri": "hf://org/model", "gpu": gpu},
        "candidate": {
            "name": "nf4",
            "storageUri": "hf://org/model",
            "quantization": "bitsandbytes-nf4",
            "gpu": gpu,
        },
        "traffic": {"router": "gateway-api", "gateway": {"name": "gw"}},
        "analysis": {
            "interval": "1m",
            "window": "10m",
            "metrics": [{"name": "ttft", "builtin": "ttft", "quantile": 0.95}],
        },
        "steps": [
            {"weight": 10, "duration": "1h", "rollbackOn": [{"metric": "ttft", "above": "250ms"}]},
            {"weight": 50, "duration": "1h", "rollbackOn": [{"metric": "ttft", "above": "250ms"}]},
            {"weight": 100},
        ],
    }


def _recent(start: float, n: int, candidate: float, drift: float) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        cand = candidate + drift * i
        rows.append(
            {
                "at": start + 60 * (i + 1),
                "verdict": "breach" if cand > 0.25 else "pass",
                "value": cand,
                "candidate": cand,
                "stable": 0.180 + 0.002 * (i % 3),
                "samples": 40 + 12 * i,
                "evidence": round(0.4 * i, 3),
            }
        )
    return rows


def progressing(start: float) -> dict[str, Any]:
    """Step 2 of 3 at 50 %, its ttft check passing, with a capacity plan."""
    step2 = start + HOUR
    recent = _recent(step2, 8, 0.190, 0.003)
    return {
        "phase": "progressing",
        "stage": "steps",
        "step": 2,
        "weight": 50,
        "startedAt": start,
        "stageStartedAt": step2,
        "lastEvaluation": recent[-1]["at"],
        "history": [
            {"type": "StepStarted", "time": start, "step": 1, "weight": 10, "message": "step 1"},
            {"type": "Advanced", "time": step2, "step": 2, "weight": 50, "message": "checks held"},
        ],
        "checks": {
            "steps[1].rollbackOn[0]": {
                "metric": "ttft",
                "verdict": "pass",
                "at": recent[-1]["at"],
                "value": recent[-1]["value"],
                "candidate": recent[-1]["candidate"],
                "stable": recent[-1]["stable"],
                "above": 0.25,
                "samples": recent[-1]["samples"],
                "evidence": recent[-1]["evidence"],
                "evidenceBound": 4.6,
                "message": "ttft P95 of the candidate is below 250ms",
                "recent": recent,
            }
        },
        "capacity": {
            "planned": {"stable": 2, "candidate": 2},
            "ready": {"stable": 2, "candidate": 2},
            "gpus": 4,
            "budget": 6,
            "gpuHours": 7.5,
        },
    }


def rolled_back(start: float) -> dict[str, Any]:
    """Rolled back in step 1: ttft P95 grew past 250 ms; a failed gate; a warning."""
    recent = _recent(start, 10, 0.200, 0.007)
    at = recent[-1]["at"]
    message = (
        "time to first token (P95) of the candidate was 263 ms, above the limit of 250 ms, "
        "for 3 checks in a row: rolled back to bf16"
    )
    return {
        "phase": "rolled_back",
        "stage": "rolled_back",
        "outcome": "rolled_back",
        "step": 1,
        "weight": 0,
        "startedAt": start,
        "stageStartedAt": start,
        "lastEvaluation": at,
        "reason": {"kind": "breach", "message": message, "at": at, "step": 1, "metric": "ttft"},
        "history": [
            {"type": "StepStarted", "time": start, "step": 1, "weight": 10, "message": "step 1"},
            {"type": "Breached", "time": at - 120, "step": 1, "weight": 10, "message": "ttft"},
            {"type": "RolledBack", "time": at, "step": 1, "weight": 0, "message": message},
        ],
        "checks": {
            "steps[0].rollbackOn[0]": {
                "metric": "ttft",
                "verdict": "breach",
                "decided": "breach",
                "at": at,
                "since": at - 120,
                "value": recent[-1]["value"],
                "candidate": recent[-1]["candidate"],
                "stable": recent[-1]["stable"],
                "above": 0.25,
                "samples": recent[-1]["samples"],
                "evidence": recent[-1]["evidence"],
                "evidenceBound": 3.2,
                "message": message,
                "recent": recent,
            }
        },
        "gates": {
            "regression@step-1": {
                "gate": "regression",
                "point": "step-1",
                "workflow": "regression-abc12",
                "namespace": NS,
                "submittedAt": start + 30,
                "phase": "Failed",
                "result": "failed",
                "message": "2 of 40 prompts regressed",
            }
        },
        "warnings": [
            {
                "type": "AlertDeliveryFailed",
                "message": "the Slack webhook answered 500",
                "at": at,
                "count": 2,
            }
        ],
        "capacity": {
            "planned": {"stable": 2, "candidate": 1},
            "ready": {"stable": 2, "candidate": 0},
            "gpus": 2,
            "budget": 4,
            "gpuHours": 1.8,  # up to its time, half an hour before the fixture's now
            "at": start + 2.5 * HOUR,
        },
    }


def canary(
    name: str, namespace: str = NS, status: dict[str, Any] | None = None, **spec: Any
) -> Obj:
    """A ModelCanary named ``name`` with the dashboard's example spec (``spec`` overrides its
    sections), from the one builder."""
    sections = {**_spec(), **spec}
    return canary_dict(name, namespace, status=status, shadow=None, budget=None, **sections)


QUALITY = {"sample": "5%", "metric": "agreement", "tolerance": 0.1, "alpha": 0.05}
"""The quality judge of :func:`judged`: disagreement within 0.1, at alpha 0.05."""


def judged(start: float) -> dict[str, Any]:
    """:func:`progressing` with the quality judge's reading: 60 pairs of mean disagreement 0.02,
    passed (the evidence 31.5 past 1/alpha), 3 pairs lost unread."""
    reading = {"epoch": "e1", "seq": 63, "lost": 3, "pairs": 60, "total": 1.2, "spread": 0.9,
               "logBreach": -4.0, "logPass": 3.45, "decided": "pass"}  # fmt: skip
    return {**progressing(start), "quality": reading}


_TIMES = frozenset(
    {"startedAt", "stageStartedAt", "lastEvaluation", "pausedAt", "time", "at", "since"}
    | {"submittedAt"}
)


def as_written(value: Any) -> Any:
    """A status made here in unix seconds, with its times as the controller writes them (RFC 3339,
    :func:`controlplane.spec.units.status_time`)."""
    if isinstance(value, list):
        return [as_written(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        k: status_time(v) if k in _TIMES and isinstance(v, int | float) else as_written(v)
        for k, v in value.items()
    }


def put(kube: FakeKube, obj: Obj) -> Obj:
    """Create ``obj`` in ``kube`` and give it its status as the controller would write it (times
    in RFC 3339: :func:`as_written`)."""
    status = obj.get("status")
    status = None if status is None else as_written(status)
    created = kube.create({k: v for k, v in obj.items() if k != "status"})
    if status is None:
        return created
    meta = created["metadata"]
    return kube.system_replace_status(canary_ref(meta["namespace"], meta["name"]), status)


def fleet(kube: FakeKube, n: int, start: float) -> None:
    """``n`` canaries over ten namespaces: progressing, rolled back, promoted, paused, new."""
    for i in range(n):
        ns = f"team-{i % 10:02d}"
        status: dict[str, Any] | None = progressing(start)
        if i % 7 == 3:
            status = rolled_back(start)
        elif i % 11 == 5:
            status = {**progressing(start), "phase": "promoted", "stage": "promoted",
                      "step": 3, "weight": 100}  # fmt: skip
        elif i % 13 == 7:
            status = {**progressing(start), "phase": "paused", "paused": "user"}
        elif i % 17 == 1:
            status = None
        put(kube, canary(f"model-{i:04d}", ns, status))


def shrink_png(path: Path) -> None:
    """Rewrite a screenshot with a 128-colour palette (a page is flat colour: a fifth the bytes)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on ``page`` (its WCAG 2 A/AA rules)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result
        if v.get("impact") in ("serious", "critical")
    ]
