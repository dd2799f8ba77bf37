"""Write a simulation's manifest and its modality arrays into the store.

Each modality's array becomes the feature entry ``<simulation>.<modality>.simulated`` (e.g.
``sim1.m1.simulated``); its key names the modality, as every feature entry's key does.

A simulation's ``generate`` gives, per modality, either pooled rows ``(N, D)`` or sequences: an
object with ``values`` ``(N, T, D)`` and ``lengths`` ``(N,)`` (e.g. simseq's ``Sequences``), written
as a sequence entry with ``steps=T`` and its lengths, end-padded (the store zeroes every step at or
beyond a row's length).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmpipe.adapters.data import feature_name
from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.store.errors import UserError
from mmpipe.store.features import FeatureEntry
from mmpipe.store.root import Store

SIMULATED = "simulated"  # the feature part of a simulation's entry names


@dataclass(frozen=True)
class SimulationResult:
    manifest_version: str
    entries: dict[str, FeatureEntry]  # modality -> its entry
    created: list[str]  # feature names written by this call; empty when everything was cached


def simulate(store: Store, name: str, config: Any, *, dtype: str = "float32") -> SimulationResult:
    """Idempotent: the same dataset config again writes nothing.

    Simulations are stored as float32 by default: they are tiny, and their labels are exact
    functions of the latents, so there is no reason to add float16 quantisation noise.
    """
    dataset = DATASETS.get(name)()
    if not isinstance(dataset, Simulation):
        raise UserError(f"{name} is not a simulation; use `mmpipe extract {name}`")
    started = time.perf_counter()
    manifest, arrays = dataset.generate(config)
    generate_seconds = time.perf_counter() - started
    version = store.save_manifest(manifest)
    entries, created = {}, []
    if sorted(arrays) != sorted(manifest.modality_names):  # a simulation bug, not a user error
        raise RuntimeError(f"{name} generated arrays for {sorted(arrays)}, but its manifest declares "
                           f"{list(manifest.modality_names)}")
    for modality in manifest.modality_names:  # in the manifest's order
        array, lengths = _rows(name, modality, arrays[modality], len(manifest))
        feature = feature_name(name, modality, SIMULATED)
        key = {"dataset": name, "manifest_version": version, "modality": modality, "simulation": asdict(config),
               "dtype": dtype}
        steps = None if lengths is None else array.shape[1]
        with store.writer(feature, key, n_rows=array.shape[0], dim=array.shape[-1], steps=steps,
                          dtype=dtype) as writer:
            if writer.existing is not None:
                entries[modality] = writer.existing
                continue
            write_started = time.perf_counter()
            for index in writer.pending_chunks():
                start, stop = writer.chunk_bounds(index)
                writer.write_chunk(index, array[start:stop], lengths=None if lengths is None else lengths[start:stop])
            timings = {"generate_s": generate_seconds, "write_s": time.perf_counter() - write_started}
            entries[modality] = writer.publish({"dataset": name, "manifest_version": version,
                                                "modality": modality, "source": "simulation", "timings": timings})
            created.append(feature)
    return SimulationResult(version, entries, created)


def _rows(name: str, modality: str, generated: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A generated modality as (values, lengths): pooled (N, D) with None, or sequences (N, T, D)
    with (N,) lengths. Any other shape is a simulation bug, not a user error."""
    if hasattr(generated, "lengths"):
        values, lengths = np.asarray(generated.values), np.asarray(generated.lengths)
        if values.ndim != 3 or lengths.shape != (values.shape[0],):
            raise RuntimeError(f"{name} {modality}: sequences must be (N, T, D) values with (N,) lengths, got "
                               f"{values.shape} and {lengths.shape}")
    else:
        values, lengths = np.asarray(generated), None
        if values.ndim != 2:
            raise RuntimeError(f"{name} {modality}: pooled rows must be (N, D), got {values.shape}")
    if values.shape[0] != n_rows:
        raise RuntimeError(f"{name} {modality}: {values.shape[0]} rows, but its manifest has {n_rows}")
    return values, lengths
