"""Its modules, one line each: docs/architecture.md, "Module map" (`spec/`)."""
