"""``controlplane.serving.pairer``: the pairer's Deployment and Service beside a canary."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.pairing.__main__ import parser
from controlplane.serving.pairer import PORTS, pairer_args, pairer_name, pairer_objects

QUALITY = {"sample": "5%", "tolerance": 0.1, "perMinute": 30}


def test_the_pairer_runs_the_products_image_between_both_predictors() -> None:
    canary = model_canary("chat", "ml", quality=QUALITY)
    deployment, service = pairer_objects(canary, "registry.example/controlplane:1.2.3")
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == pairer_name(canary)
    assert pairer_name(canary) == "chat-pairer"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/controlplane:1.2.3"
    assert container["command"] == ["python", "-m", "controlplane.pairing"]
    stable, candidate = container["args"][1], container["args"][3]
    model = canary.spec.model.name
    assert stable == f"http://{model}-{canary.spec.stable.name}-predictor.ml.svc:80"
    assert candidate == f"http://{model}-{canary.spec.candidate.name}-predictor.ml.svc:80"
    assert "--per-minute=30" in container["args"]
    assert {p["port"] for p in service["spec"]["ports"]} == set(PORTS.values())
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert container["securityContext"]["runAsNonRoot"] is True
    flags = parser().parse_args(container["args"])  # what the pairer's own command reads
    assert (flags.stable_port, flags.candidate_port) == (PORTS["stable"], PORTS["candidate"])
    assert (flags.stable, flags.candidate, flags.per_minute) == (stable, candidate, 30)


def test_the_pairer_keeps_a_conversation_by_the_spec_session_key() -> None:
    header = model_canary(quality=QUALITY, traffic={"session": {"header": "x-session-id"}})
    assert parser().parse_args(pairer_args(header)).session_header == "x-session-id"
    cookie = model_canary(quality=QUALITY, traffic={"session": {"cookie": "sid"}})
    assert parser().parse_args(pairer_args(cookie)).session_cookie == "sid"


def test_the_pairer_keeps_the_text_only_when_the_spec_says_so() -> None:
    assert parser().parse_args(pairer_args(model_canary(quality=QUALITY))).keep_prompts is False
    kept = model_canary(quality={**QUALITY, "keepPrompts": True})
    assert parser().parse_args(pairer_args(kept)).keep_prompts is True


def test_a_canary_without_quality_has_no_pairer() -> None:
    with pytest.raises(ValueError, match="has no quality section"):
        pairer_args(model_canary())
