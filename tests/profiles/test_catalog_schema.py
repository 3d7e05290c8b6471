"""The packaged catalogue and measured entries, read as they are, are what their schema reads.

``canaryctl validate`` (and every command) reads the packaged ``gpus.yaml`` and
``quantization.yaml`` into the catalogue's plain objects without their pydantic schema, and
looks the packaged measured entries up by four fields read from their YAML, so it starts
without pydantic (issue 41). That is sound only for the package's own files, checked here:
each file passes its schema, the catalogue read as it is equals the one the schema's path
builds, the plain objects have the schema's fields, and each measured entry's key is its
model's.
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel

from controlplane.profiles import catalog, catalog_schema, measured
from controlplane.profiles.catalog import GPUS_FILE, QUANT_FILE


def _validated() -> catalog.Catalog:
    return catalog.parse_catalog(
        catalog._packaged_text(GPUS_FILE),
        catalog._packaged_text(QUANT_FILE),
        gpus_name=f"{GPUS_FILE} (packaged)",
        quant_name=f"{QUANT_FILE} (packaged)",
        packaged=True,
    )


def test_the_packaged_catalogue_read_as_it_is_is_the_checked_one() -> None:
    read = catalog._load_packaged()
    checked = _validated()
    assert read == checked
    assert len(read.gpus) >= 8
    assert len(read.methods) >= 6


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _schema_fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_the_plain_objects_have_the_schemas_fields() -> None:
    pairs: list[tuple[type, type[BaseModel], set[str]]] = [
        (catalog.GpuProfile, catalog_schema.GpuEntry, {"name"}),
        (catalog.QuantMethod, catalog_schema.QuantEntry, {"name"}),
        (catalog.VllmRange, catalog_schema.VllmRangeEntry, set()),
        (catalog.VllmRemoval, catalog_schema.VllmRemovalEntry, set()),
        (catalog.SupportMap, catalog_schema.SupportEntry, set()),
    ]
    for plain, schema, extra in pairs:
        assert _fields(plain) == _schema_fields(schema) | extra, plain.__name__


def test_each_packaged_measured_entry_is_found_by_its_models_key() -> None:
    measured._packaged.cache_clear()
    entries = measured._packaged()
    assert len(entries) >= 3
    assert all(loaded._entry is None for loaded in entries)  # nothing parsed by a model yet
    found = measured.find(entries, "no-such-model", "none", "nvidia-l4")
    assert found is None
    assert all(loaded._entry is None for loaded in entries)  # a lookup that finds none
    for loaded in entries:
        entry = loaded.entry  # parsed by the model now
        assert loaded.key == (entry.model, entry.quantization, entry.gpu, entry.measured_at)
        again = measured.find(entries, entry.model, entry.quantization, entry.gpu)  # type: ignore[arg-type]
        assert again is not None
        assert again.key[:3] == loaded.key[:3]
