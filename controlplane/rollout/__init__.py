"""The rollout core: state, observations, actions and the pure state machine.

Its modules, one line each: docs/architecture.md, "Module map" (`rollout/`).
"""
