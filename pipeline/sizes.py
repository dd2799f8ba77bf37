"""Baselines sized from MultiLoReFT (paper §5.1, Table 4): the fit workflow reads the ranks of
the MultiLoReFT run on the same inputs and seed and writes them into the baseline's config
before its run key is computed (`adapters/sizes.py` says what the sizes mean).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mmpipe.adapters import components
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.sizes import input_sizes
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

SIZE_SOURCE = "multiloreft"


def needs_sizes(config: Any) -> bool:
    return hasattr(config, "sizes") and hasattr(config, "size")


def matching_runs(store: Store, data: MultimodalFeatures, seed: int, method: str = SIZE_SOURCE) -> list[RunEntry]:
    """Full-model (no ablation) runs of ``method`` on exactly these inputs and this seed."""
    wanted = {i.modality: i.entry.fingerprint for i in data.inputs}
    return [run for run in store.runs(method)
            if run.record.seed == seed and not run.record.ablation and run.record.dataset == data.dataset
            and run.record.manifest_version == data.manifest_version
            and list(run.record.input_fingerprints.items()) == list(wanted.items())]


def sizes_of_run(run: RunEntry) -> tuple[int, ...]:
    """(r_s, r_k per modality): the final ranks of a MultiLoReFT run."""
    ranks = run.record.ranks or {}
    names = (components.SHARED, *(components.specific(m) for m in run.record.modalities))
    return tuple(int(ranks[c]["final"]) for c in names)


def resolve_sizes(config: Any, store: Store, data: MultimodalFeatures, seed: int) -> Any:
    """``config`` with ``sizes`` (and ``sizes_from``) filled in, when it has them to fill."""
    if not needs_sizes(config) or config.sizes is not None:
        return config
    if config.size == "input":
        return dataclasses.replace(config, sizes=input_sizes(data.dims), sizes_from="input")
    runs = matching_runs(store, data, seed)
    if not runs:
        inputs = " ".join(f"--input {i.modality}={i.entry.name.rsplit('.', 1)[-1]}" for i in data.inputs)
        raise UserError(
            f"no {SIZE_SOURCE} run on {data.dataset} ({' + '.join(data.modalities)}) with seed {seed} to take "
            f"the subspace sizes from; fit one with `mmpipe fit {SIZE_SOURCE} --dataset {data.dataset} {inputs} "
            f"--seeds {seed}`, or use --set size=input or --set sizes=R_S,{','.join('R_' + m for m in data.modalities)}")
    run = max(runs, key=lambda r: r.record.started_at or "")
    return dataclasses.replace(config, sizes=sizes_of_run(run), sizes_from=run.run_id)
