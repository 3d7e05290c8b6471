"""GPU and quantization profiles: the catalogue, the memory-fit check and GPU cost.

Its modules, one line each: docs/architecture.md, "Module map" (`profiles/`).
"""
