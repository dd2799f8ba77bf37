"""Subspace sizes for the baselines (MultiLoReFT paper §5.1 and Appendix A.2.1, Table 4).

By default (``size="learned"``) a baseline's sizes (r_s, r_m1, r_m2) are the ranks MultiLoReFT
learned on the same data (same manifest and feature entries) and the same seed, read from the
published MultiLoReFT run; ``size="input"`` fixes every size to MultiLoReFT's initial rank,
min(d1, d2) (the "initial input dimensionality" of Table 4). Sizes given explicitly win.

The resolved sizes, and the run they came from, are config fields, so they are part of the
baseline run's fingerprint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mmpipe.adapters.data import PairedFeatures
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

SIZE_SOURCE = "multiloreft"
COMPONENTS = ("z_s", "z_m1", "z_m2")


def matching_runs(store: Store, data: PairedFeatures, seed: int, method: str = SIZE_SOURCE) -> list[RunEntry]:
    """Full-model (no ablation) runs of ``method`` on exactly these features and this seed."""
    return [run for run in store.runs(method)
            if run.record.get("seed") == seed and not run.record.get("ablation")
            and run.key.get("dataset") == data.dataset
            and run.key.get("manifest_version") == data.manifest_version
            and run.key.get("m1_fingerprint") == data.m1.fingerprint
            and run.key.get("m2_fingerprint") == data.m2.fingerprint]


def learned_sizes(store: Store, data: PairedFeatures, seed: int) -> tuple[tuple[int, int, int], str]:
    """(r_s, r_m1, r_m2) of the newest matching MultiLoReFT run, and that run's id."""
    runs = matching_runs(store, data, seed)
    if not runs:
        raise UserError(
            f"no {SIZE_SOURCE} run on {data.dataset} ({data.m1.name} + {data.m2.name}) with seed {seed} to take "
            f"the subspace sizes from; fit one with `mmpipe fit {SIZE_SOURCE} --dataset {data.dataset} "
            f"--seeds {seed}`, or use --set size=input or --set sizes=R_S,R_M1,R_M2")
    run = max(runs, key=lambda r: r.record.get("started_at") or "")
    return sizes_of_run(run), run.run_id


def sizes_of_run(run: RunEntry) -> tuple[int, int, int]:
    """(r_s, r_m1, r_m2): the final ranks of a MultiLoReFT run."""
    ranks = run.record["ranks"]
    return tuple(int(ranks[c]["final"]) for c in COMPONENTS)  # type: ignore[return-value]


def resolve_sizes(config: Any, store: Store, data: PairedFeatures, seed: int) -> Any:
    """``config`` with ``sizes`` (and ``sizes_from``) filled in; see the module docstring."""
    if config.sizes is not None:
        return config
    if config.size == "input":
        r0 = min(data.h1.shape[1], data.h2.shape[1])
        return dataclasses.replace(config, sizes=(r0, r0, r0), sizes_from="input")
    sizes, run_id = learned_sizes(store, data, seed)
    return dataclasses.replace(config, sizes=sizes, sizes_from=run_id)


def check_sizes(config: Any, dims: tuple[int, int]) -> tuple[int, int, int]:
    """The (r_s, r_m1, r_m2) a model is built with; ``size="input"`` needs no lookup."""
    if config.sizes is None:
        if config.size == "input":
            r0 = min(dims)
            return r0, r0, r0
        raise UserError("sizes are not resolved: fit through `mmpipe fit` (which reads the MultiLoReFT ranks "
                        "from the store), or set sizes=R_S,R_M1,R_M2 or size=input")
    if len(config.sizes) != 3 or min(config.sizes) < 1:
        raise UserError(f"sizes must be three positive integers (r_s, r_m1, r_m2), not {config.sizes}")
    return tuple(int(s) for s in config.sizes)  # type: ignore[return-value]
