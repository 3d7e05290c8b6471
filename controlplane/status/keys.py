"""The top-level keys of a ModelCanary's ``status`` beside the rollout state's own.

Owns their names. :mod:`controlplane.status.document` writes them (and re-exports them);
``kubectl canary``'s views read them from here, without the rollout state and pydantic
at start-up. Pure.
"""

from __future__ import annotations

BOOK_KEY = "controller"
"""``status.controller``: the controller's book of effects
(:class:`controlplane.status.document.Book`)."""
CAPACITY_KEY = "capacity"
"""Where the capacity effect's record is shown
(:class:`controlplane.status.document.CapacityRecord`)."""
ADOPTED_KEY = "adopted"
"""``status.adopted``: the live service as the current rollout adopted it
(:mod:`controlplane.controller.adoption`), kept through every status the rollout writes."""
PROBLEMS_KEY = "problems"
WARNINGS_KEY = "warnings"
"""``status.warnings``: trouble beside the rollout that a user must see where they look (an alert
that could not be delivered), :func:`controlplane.status.document.with_warning`; kept while the
rollout of the same spec runs."""
