"""The GitOps health checks of docs/gitops.md, run for real: the Argo CD Lua script in a Lua
interpreter (lupa), the Flux CEL expressions compiled and evaluated with cel-python, against a
ModelCanary status in every phase the controller writes (read from the code, so a new phase
without a mapping fails here)."""

from __future__ import annotations

import re
from typing import Any, get_args

import celpy
import lupa
import pytest
import yaml
from support.canaries import canary_dict
from support.chart import ROOT

from controlplane.rollout.state import Phase

DOC = ROOT / "docs" / "gitops.md"
PHASES = [*get_args(Phase), "invalid"]
ARGO: dict[str, str] = {
    "pending": "Progressing",
    "shadow": "Progressing",
    "progressing": "Progressing",
    "holding": "Progressing",
    "gated": "Progressing",
    "throttled": "Progressing",
    "promoted": "Healthy",
    "rolled_back": "Degraded",
    "invalid": "Degraded",
    "paused": "Suspended",
    "awaiting_approval": "Suspended",
}
FLUX: dict[str, str] = {
    phase: {"Healthy": "current", "Degraded": "failed"}.get(health, "inProgress")
    for phase, health in ARGO.items()
}


def block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, f"no ```{language} block in docs/gitops.md"
    return str(blocks[-1] if language == "yaml" else blocks[0])


def status_of(phase: str | None, observed: int | None = 3) -> dict[str, Any]:
    """The status the controller writes in ``phase`` at step 2 (``None``: none written yet),
    having seen generation ``observed``."""
    if phase is None:
        return {}
    status: dict[str, Any] = {"phase": phase, "step": 2, "weight": 25, "history": []}
    if observed is not None:
        status["observedGeneration"] = observed
    if phase in ("rolled_back", "paused"):
        status["reason"] = {"kind": "breach", "message": f"why it is {phase}", "step": 2}
    return status


# the canary whose health the checks tell, at generation 3, before the controller wrote a status
BASE = canary_dict("c", "ml", metadata={"generation": 3})
# while the controller has not caught up: no phase yet, generation 4 not seen, none seen, a phase
# from a newer controller
NO_PHASE = canary_dict(base=BASE, status=status_of(None))
STALE = canary_dict(base=BASE, metadata={"generation": 4}, status=status_of("promoted", observed=3))
UNOBSERVED = canary_dict(base=BASE, status=status_of("promoted", observed=None))
FUTURE = canary_dict(base=BASE, status=status_of("from-the-future"))


def argo_health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = block("lua")

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    hs = lua.execute(script)
    return str(hs["status"]), str(hs["message"])


def test_every_phase_has_a_mapping() -> None:
    assert set(PHASES) == set(ARGO)


@pytest.mark.parametrize("phase", PHASES)
def test_argo_cd_lua_health_of_every_phase(phase: str) -> None:
    status, message = argo_health(canary_dict(base=BASE, status=status_of(phase)))
    assert status == ARGO[phase]
    assert message
    if phase in ("rolled_back", "paused"):
        assert message == f"why it is {phase}"


def test_argo_cd_lua_waits_for_the_controller() -> None:
    assert argo_health(NO_PHASE)[0] == "Progressing"
    assert argo_health(BASE) == ("Progressing", "Waiting for the canary controller")
    stale = argo_health(STALE)
    assert stale[0] == "Progressing"
    assert "generation 4" in stale[1]
    assert argo_health(UNOBSERVED)[0] == "Progressing"
    assert argo_health(FUTURE)[0] == "Unknown"


def test_argo_cd_lua_reports_progress() -> None:
    progressing = canary_dict(base=BASE, status=status_of("progressing"))
    assert argo_health(progressing)[1] == "Canary progressing (step 2, weight 25%)"


def flux_exprs() -> dict[str, celpy.Runner]:
    kustomization = yaml.safe_load(block("yaml"))
    (check,) = kustomization["spec"]["healthCheckExprs"]
    assert (check["apiVersion"], check["kind"]) == (
        "canary.controlplane.dev/v1alpha1",
        "ModelCanary",
    )
    env = celpy.Environment()
    return {
        name: env.program(env.compile(check[name])) for name in ("inProgress", "failed", "current")
    }


def flux_health(obj: dict[str, Any]) -> str | None:
    """Flux's order: inProgress, then failed, then current (None: no expression matched)."""
    activation = {k: celpy.json_to_cel(v) for k, v in obj.items()}
    for name, program in flux_exprs().items():
        if bool(program.evaluate(activation)):
            return name
    return None


@pytest.mark.parametrize("phase", PHASES)
def test_flux_cel_health_of_every_phase(phase: str) -> None:
    assert flux_health(canary_dict(base=BASE, status=status_of(phase))) == FLUX[phase]


def test_flux_cel_waits_for_the_controller() -> None:
    assert flux_health(NO_PHASE) == "inProgress"
    assert flux_health(STALE) == "inProgress"
    assert flux_health(UNOBSERVED) == "inProgress"
    assert flux_health(FUTURE) is None
