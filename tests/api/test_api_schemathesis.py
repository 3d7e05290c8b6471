"""schemathesis' stateless property tests over every operation of the API's own OpenAPI document:
no input a caller with a valid token can send makes the API answer 5xx, and every answer is one
the document declares, in the shape it declares (issue 33).

The application is the one ``canaryctl controller`` serves, over the fake cluster of
:mod:`support.api` with a canary rolling out, called in-process (ASGI) with the static token.
Bounded (``MAX_EXAMPLES`` per operation, no shrinking of passing runs) and deterministic
(``derandomize``, no example database), so it runs the same in CI in a few seconds. (Driven
through ``APIOperation.as_strategy`` rather than ``schema.parametrize``: the lazy
``pytest.from_fixture`` loader of schemathesis 4.32 does not run on pytest 9.2, and an eager schema
would build the fake cluster at import time.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.api import NAME, NS, STATIC, World

MAX_EXAMPLES = 20
TOKEN = {"Authorization": f"Bearer {STATIC}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(world: World, tmp_path: Path) -> Any:
    """The OpenAPI document of the controller's API over the fake cluster of ``world`` (its
    canary rolling out), loaded by schemathesis from the application itself (every call is
    in-process ASGI)."""
    secret = tmp_path / "git-secret"
    secret.write_text("hook-secret")
    app = world.app(  # cluster-wide: every namespace reaches the (fake) API server
        on_git_push=lambda: None, git_webhook_secret_file=str(secret), namespace=[]
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


WATCH = "/api/v1/watch/canaries"
"""The live watch: its answer never ends, so it is tested with a real socket instead
(tests/api/test_api_watch.py)."""


def operations(schema: Any) -> list[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert WATCH in {op.path for op in found}
    found = [op for op in found if op.path != WATCH]
    assert {op.path for op in found} >= {
        "/api/v1/canaries",
        "/api/v1/namespaces/{namespace}/canaries/{name}",
        "/api/v1/namespaces/{namespace}/canaries/{name}/promote",
        "/api/v1/alertmanager",
        "/api/v1/git/webhook",
        "/api/v1/whoami",
        "/api/v1/namespaces/{namespace}/canaries/{name}/events",
        "/api/v1/namespaces/{namespace}/canaries/{name}/objects",
    }
    return found


POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE


@pytest.mark.parametrize(
    ("mode", "fixed", "token"),
    [
        (POSITIVE, {}, TOKEN),
        (NEGATIVE, {}, TOKEN),
        (POSITIVE, {"namespace": NS, "name": NAME}, TOKEN),
        (POSITIVE, {}, {}),
    ],
    ids=["positive", "negative", "on-the-canary", "generated-tokens"],
)
def test_no_input_makes_the_api_answer_5xx_or_off_its_document(
    api_schema: Any,
    world: World,
    mode: schemathesis.GenerationMode,
    fixed: dict[str, str],
    token: dict[str, str],
) -> None:
    """Every operation, ``MAX_EXAMPLES`` inputs each: valid ones (positive), ones that break the
    document (negative: bad names, bodies, types), and valid ones addressed to the canary that
    exists (the verbs act on it), each with the static token; then with the bearer tokens
    schemathesis makes up (401, declared). An operation that takes neither a path parameter nor
    a body has no negative input (its Authorization header is the token's)."""
    for operation in operations(api_schema):
        if mode.is_negative and not (len(operation.path_parameters) or len(list(operation.body))):
            continue
        names = {k: v for k, v in fixed.items() if k in operation.path}
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=names or None)

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
        )
        def each(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=token, checks=CHECKS)

        each()
    if fixed:  # the verbs reached the canary: intents recorded, the controller woken
        assert (NS, NAME) in world.woken
