"""Analysis: turns a canary's checks into PromQL, asks a metric provider, and judges the answers.

Layout (pure core first, shells last):

- :mod:`.queries` (pure): the ``vllm`` preset and strict template rendering of custom queries.
- :mod:`.verdict` (pure): value + check -> pass | breach | inconclusive.
- :mod:`.evaluator`: runs the due checks of one evaluation against a provider; never raises for
  provider problems. Called by the controller and by ``canaryctl simulate``.
- :mod:`.replay`: a provider that prefetches whole series with range queries for fast replays.
- :mod:`.providers`: the ``MetricProvider`` protocol, Prometheus, and an in-memory fake.
"""
