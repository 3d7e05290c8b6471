"""Shared builders of the API tests: a fake cluster with a controller, and the API in front.

``World`` is FakeKube + FakeKServe + the Reconciler and Controller wired exactly as
``canaryctl controller`` wires them (``build`` of :mod:`controlplane.cli.controller`: the metrics
observe the analysis and are told of every rollout event), driven tick by tick on an injected
clock. ``World.app`` is the HTTP API of that controller (``api_app`` of the same module), with a
static token and TokenReview / SubjectAccessReview against the fake.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controlplane.cli import controller as cli
from controlplane.controller.metrics import ControllerMetrics
from controlplane.controller.runner import Controller
from controlplane.kube.client import Obj, canary_ref
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe
from support.canaries import canary_dict

NS = "ml-serving"
NAME = "support-triage"
STATIC = "static-secret-token"
HOUR = 3600.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# The API tests' canary: the contract example without shadow and budget, on gateway-api (gateway
# ``gw``), evaluated every minute.
CANARY = canary_dict(
    traffic={"router": "gateway-api", "gateway": {"name": "gw"}}, shadow=None, budget=None
)


def canary(
    name: str = NAME, *, namespace: str = NS, prometheus: str | None = None, **spec: Any
) -> Obj:
    """:data:`CANARY` as ``name`` in ``namespace``, with the builder's changes
    (:func:`support.canaries.canary_dict`: ``spec`` replaces top-level spec sections)."""
    return canary_dict(name, namespace, base=CANARY, prometheus=prometheus, **spec)


def controller_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["controller", "--namespace", NS, "--tick", "0s", *extra])


class World:
    """One fake cluster and the controller driving it (``canaryctl controller``'s wiring)."""

    def __init__(
        self, start: float, tmp: Path, *, ready_after_s: float = 60.0, flags: Sequence[str] = ()
    ) -> None:
        """``flags``: more ``canaryctl controller`` flags (``--allow-prometheus URL``)."""
        self.clock = Clock(start)
        self.kube = FakeKube(now=self.clock)
        self.kserve = FakeKServe(self.kube, now=self.clock, ready_after_s=ready_after_s)
        token_file = tmp / "token"
        token_file.write_text(STATIC + "\n")
        self.args = controller_args("--api-token-file", str(token_file), *flags)
        self.metrics = ControllerMetrics()
        self.controller: Controller = cli.build(
            self.args, self.kube, self.clock, metrics=self.metrics
        )
        self.woken: list[tuple[str, str]] = []
        self._on_git_push: Callable[[], None] | None = None

    def app(self, *, on_git_push: Callable[[], None] | None = None, **flags: str) -> Any:
        args = self.args
        for key, value in flags.items():
            setattr(args, key, value)
        controller = self.controller
        world = self

        class Recording:
            """The controller, with the wake-ups it received recorded."""

            def wake(self, namespace: str, name: str) -> None:
                world.woken.append((namespace, name))
                controller.wake(namespace, name)

            def ready(self) -> tuple[bool, str]:
                return controller.ready()

        return cli.api_app(args, self.kube, Recording(), self.metrics, on_git_push=on_git_push)

    def create(self, obj: Obj) -> Obj:
        return self.kube.create(copy.deepcopy(obj))

    def get(self, name: str = NAME, namespace: str = NS) -> Obj:
        return self.kube.get(canary_ref(namespace, name))

    def status(self, name: str = NAME) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def pass_once(self) -> float | None:
        self.kserve.tick()
        self.controller.poll(0.0)
        wake = self.controller.run_once()
        pending = [p for p in self.kserve.pending().values() if p > self.clock.t]
        wakes = [w for w in (wake, *pending) if w is not None]
        return min(wakes) if wakes else None

    def run_until(self, done: Callable[[], bool], limit_s: float, passes: int = 5000) -> None:
        """Drive the controller, jumping the clock to the next timer, until ``done()``."""
        end = self.clock.t + limit_s
        for _ in range(passes):
            if done():
                return
            wake = self.pass_once()
            if done():
                return
            if wake is None or wake > end:
                raise AssertionError(f"not done by the limit; status: {self.status()}")
            self.clock.t = max(self.clock.t, wake)
        raise AssertionError("the controller did not settle")

    def phase(self, name: str = NAME) -> str:
        return str(self.status(name).get("phase") or "")
