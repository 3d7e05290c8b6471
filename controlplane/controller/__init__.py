"""The controller: the imperative shell that reconciles ModelCanary resources.

Layout (pure first, shells last):

- :mod:`.conditions` (pure): kstatus-compatible ``Ready`` / ``Reconciling`` / ``Stalled``.
- :mod:`.status` (pure): the ``status`` document (rollout state + effect bookkeeping), intents
  recorded on the resource, which Events are still to be emitted.
- :mod:`.batch`: one analysis tick for many canaries (grouped PromQL, counted queries).
- :mod:`.reconcile`: one canary at one time: validate, deploy, verify weights, step the machine,
  persist, apply effects, clean up.
- :mod:`.runner`: watch + work queue + timer heap + backoff + leader election; ``canaryctl
  controller`` runs it. See docs/controller.md.
"""
