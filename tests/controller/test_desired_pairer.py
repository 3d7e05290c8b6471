"""The desired objects of a quality canary: the pairer before the route that sends to it."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.desired import desired_objects
from controlplane.errors import RouterError
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.pairer import pairer_name

QUALITY = {"sample": "5%", "tolerance": 0.1}


def test_the_pairer_is_applied_before_the_route_while_the_rollout_runs() -> None:
    canary = model_canary("chat", "ml", router="gateway-api", quality=QUALITY)
    objs = desired_objects(canary, load_catalog(), 25, pairer_image="img:1")
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
    pairer = kinds.index(("Deployment", pairer_name(canary)))
    assert kinds[pairer + 1] == ("Service", pairer_name(canary))
    assert kinds[-1][0] == "HTTPRoute"
    promoted = desired_objects(canary, load_catalog(), 25, outcome="promoted", pairer_image="i")
    assert all(o["kind"] != "Deployment" for o in promoted)


def test_without_the_pairers_image_a_quality_canary_cannot_be_deployed() -> None:
    canary = model_canary("chat", "ml", router="gateway-api", quality=QUALITY)
    with pytest.raises(RouterError, match="--pairer-image"):
        desired_objects(canary, load_catalog(), 25)
    plain = model_canary("chat", "ml", router="gateway-api")
    assert all(o["kind"] != "Deployment" for o in desired_objects(plain, load_catalog(), 25))
