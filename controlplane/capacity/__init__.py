"""Capacity: each variant's replicas and GPUs at every step of a rollout (pure).

:mod:`.plan` decides the replicas and the order of a change; :mod:`.estimate` says what one
replica serves (a measured profile, else the catalogue's speed model). Below the rollout
machine and beside serving in the product's layers; no I/O but reading measured profiles.
"""
