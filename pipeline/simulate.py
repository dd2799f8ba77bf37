"""Write a simulation's manifest and its modality arrays into the store.

Each modality's array becomes the feature entry ``<simulation>.<modality>.simulated`` (e.g.
``sim1.m1.simulated``); its key names the modality, as every feature entry's key does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

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
        array = arrays[modality]
        feature = feature_name(name, modality, SIMULATED)
        key = {"dataset": name, "manifest_version": version, "modality": modality, "simulation": asdict(config),
               "dtype": dtype}
        with store.writer(feature, key, n_rows=array.shape[0], dim=array.shape[1], dtype=dtype) as writer:
            if writer.existing is not None:
                entries[modality] = writer.existing
                continue
            write_started = time.perf_counter()
            for index in writer.pending_chunks():
                start, stop = writer.chunk_bounds(index)
                writer.write_chunk(index, array[start:stop])
            timings = {"generate_s": generate_seconds, "write_s": time.perf_counter() - write_started}
            entries[modality] = writer.publish({"dataset": name, "manifest_version": version,
                                                "modality": modality, "source": "simulation", "timings": timings})
            created.append(feature)
    return SimulationResult(version, entries, created)
