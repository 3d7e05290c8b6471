"""The controller: the imperative shell that reconciles ModelCanary resources.

Layout (pure first, shells last):

- :mod:`.conditions` (pure): kstatus-compatible ``Ready`` / ``Reconciling`` / ``Stalled``.
- :mod:`.status` (pure): the ``status`` document (rollout state + effect bookkeeping), intents
  recorded on the resource, which Events are still to be emitted.
- :mod:`.batch`: one analysis tick for many canaries (grouped PromQL, counted queries).
- :mod:`.context`: one canary during one reconcile (``Ctx``), and the one way to write an Event.
- :mod:`.children`: the serving objects in the cluster (apply with owners, readiness, release).
- :mod:`.traffic`: weights and outcomes on the router (set, verify, finalize).
- :mod:`.argo_gates` / :mod:`.gate_effects`: gate Workflows on the Argo Server (client; submit,
  poll, stop).
- :mod:`.reconcile`: one canary at one time: validate, when to call the machine and what to
  observe, persist, catch up through the effect modules, requeue.
- :mod:`.runner`: watch + work queue + timer heap + backoff + leader election; ``canaryctl
  controller`` runs it. See docs/controller.md.
"""
