"""fit.py against the GPU entries in profiles/measured/ (measured on a lent NVIDIA H200).

The entries are data (docs/profiles.md, "Measured on an NVIDIA H200" says how they were made);
these tests hold fit.py's weights for the full shape, from the catalogue's bytes per weight, to
the bytes the built model's tensors held on the GPU.
"""

from __future__ import annotations

import pytest

from controlplane.profiles import measured
from controlplane.profiles.catalog import load_catalog
from controlplane.sweep.inprocess import architecture, predicted_weights_gib


def _gpu_entries() -> list[measured.MeasuredProfile]:
    measured._packaged.cache_clear()
    return [e.entry for e in measured._packaged() if e.entry.gpu is not None]


def test_there_are_full_depth_gpu_entries_of_every_in_process_method() -> None:
    got = {
        e.quantization
        for e in _gpu_entries()
        if e.mode == "in-process" and e.layers_run == e.layers_total
    }
    assert got >= {"none", "fp8", "bitsandbytes-nf4", "bitsandbytes-int8"}


@pytest.mark.parametrize("entry", _gpu_entries(), ids=lambda e: f"{e.model}-{e.quantization}")
def test_fit_predicts_the_measured_weights_within_2_percent(
    entry: measured.MeasuredProfile,
) -> None:
    catalog = load_catalog(None)
    assert entry.architecture is not None
    assert entry.memory is not None
    predicted = predicted_weights_gib(
        architecture(entry.architecture), catalog.quant(entry.quantization)
    )
    assert predicted == pytest.approx(entry.memory.weights_gib, rel=0.02)
