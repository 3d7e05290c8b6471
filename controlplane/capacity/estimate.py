"""What one replica of a variant serves: requests per second at full batch, and its GPUs.

Owns where a per-replica capacity comes from, in order of trust: ``requestsPerReplica``, a
measured profile entry, else the catalogue's speed model for ``typicalRequest``
(:func:`batch_rps`). Called by validation, ``canaryctl render`` / ``validate``, the controller's
capacity effect and the local stack. See docs/capacity.md, "The plan".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from controlplane.capacity.plan import ReplicaCapacity, Sizes
from controlplane.profiles.catalog import Catalog
from controlplane.profiles.measured import find, measured_for
from controlplane.profiles.speed import Speed, speed_for

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary, TypicalRequest

Role = Literal["stable", "candidate"]


def batch_rps(speed: Speed, request: TypicalRequest) -> float:
    """Requests per second of one replica at full batch: ``B`` requests, where ``B`` is
    ``max_num_seqs`` or what the KV cache holds of ``request`` (the fewer), take ``B`` prefills
    (compute-bound, one after another) plus ``output_tokens`` decode steps of a batch of ``B``."""
    tokens = request.input_tokens + request.output_tokens
    batch = max(1, min(speed.max_num_seqs, int(speed.kv_capacity_tokens // tokens)))
    prefill = batch * request.input_tokens * speed.prefill_s_per_token
    decode = request.output_tokens * speed.step_s(batch)
    return batch / (prefill + decode + speed.overhead_s)


def replica_capacity(canary: ModelCanary, role: Role, catalog: Catalog) -> ReplicaCapacity:
    """The capacity of one replica of ``role`` (see the module docstring for the order)."""
    variant = canary.spec.variant(role)
    spec = canary.spec.capacity
    given = None
    if spec is not None:
        given = getattr(spec.requests_per_replica, role)
    if given is not None:
        source = f"spec.capacity.requestsPerReplica.{role}"
        return ReplicaCapacity(given, variant.gpu_count, source)
    found = find(measured_for(catalog), canary.spec.model.name, variant.quantization, variant.gpu)
    if found is not None and variant.gpu_count == 1:
        rates = [p.requests_per_s for p in found.entry.points if p.requests and not p.errors]
        if rates:
            return ReplicaCapacity(max(rates), variant.gpu_count, f"measured ({found.source})")
    request = canary.spec.capacity_or_default().typical_request
    speed = speed_for(canary.spec.model, variant, catalog)
    rps = batch_rps(speed, request)
    shape = f"{request.input_tokens} in / {request.output_tokens} out"
    return ReplicaCapacity(rps, variant.gpu_count, f"catalogue estimate ({shape} tokens)")


def sizes_of(canary: ModelCanary, catalog: Catalog) -> Sizes:
    """Both variants' per-replica capacities."""
    return Sizes(
        replica_capacity(canary, "stable", catalog),
        replica_capacity(canary, "candidate", catalog),
    )
