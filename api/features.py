"""Stores and feature entries from Python: open a store, list its entries, load one split.

A feature entry ``<dataset>.<modality>.<feature>`` holds one row per manifest row: pooled ``(D,)``
or a sequence ``(T, D)`` with its valid steps (``lengths``). `load_features` reads it with the
manifest rows it belongs to (the manifest version its key names), so labels travel with values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from mmpipe.adapters.pooling import POOLINGS, pool
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SPLITS
from mmpipe.store.root import Store

__all__ = ["Features", "UserError", "list_features", "load_features", "open_store", "simulate"]


def open_store(path: str | Path | None = None, *, create: bool = False) -> Store:
    """The store at ``path`` (default: ``$MMPIPE_STORE`` or ``./mmpipe-store``), as ``--store`` opens it.

    >>> store = mmpipe.open_store("mmpipe-store", create=True)
    """
    return Store.open(path, create=create)


def simulate(store: Store, name: str = "sim1", **config: Any) -> list[str]:
    """Generate a simulation (sim1, sim2 or simseq) into ``store``, as `mmpipe simulate` does;
    ``config`` sets its config fields (e.g. ``n``, ``seed``). Returns the feature names; the same
    config again writes nothing.

    >>> mmpipe.simulate(store, "sim1", n=1000, seed=0)
    ['sim1.m1.simulated', 'sim1.m2.simulated']
    """
    from mmpipe.pipeline.datasets import DATASETS, Simulation
    from mmpipe.pipeline.simulate import simulate as run_simulation

    dataset = DATASETS.get(name)
    if not issubclass(dataset, Simulation):
        raise UserError(f"{name} is not a simulation; extract it with `mmpipe extract {name}`")
    result = run_simulation(store, name, apply_overrides(dataset.Config(), config))
    return [entry.name for entry in result.entries.values()]


def list_features(store: Store, dataset: str | None = None) -> pd.DataFrame:
    """One row per stored feature entry (of ``dataset``, or all): name, dataset, modality,
    fingerprint, kind (pooled or sequence), rows, dim, steps, dtype, manifest_version.

    >>> mmpipe.list_features(store, "sim1")["name"].tolist()
    ['sim1.m1.simulated', 'sim1.m2.simulated']
    """
    rows = []
    for entry in store.feature_entries():
        if dataset is not None and entry.meta.get("dataset") != dataset:
            continue
        rows.append({"name": entry.name, "dataset": entry.meta.get("dataset"), "modality": entry.meta.get("modality"),
                     "fingerprint": entry.fingerprint, "kind": "sequence" if entry.is_sequence else "pooled",
                     "rows": entry.shape[0], "dim": entry.dim, "steps": entry.shape[1] if entry.is_sequence else None,
                     "dtype": entry.meta["dtype"], "manifest_version": entry.meta.get("manifest_version")})
    columns = ["name", "dataset", "modality", "fingerprint", "kind", "rows", "dim", "steps", "dtype",
               "manifest_version"]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Features:
    """One split (or all rows) of a feature entry, rows in manifest order.

    ``values`` is float32 ``(n, D)``, or ``(n, T, D)`` for a sequence entry with ``lengths``
    ``(n,)`` valid steps (end-padded with zeros); ``valid`` is False for rows whose media failed
    (they hold no features); ``rows`` are the manifest rows: sample_id, split, group, labels.
    """

    name: str
    values: torch.Tensor  # (n, D) or (n, T, D)
    lengths: torch.Tensor | None  # (n,) valid steps of a sequence entry; None for pooled rows
    valid: torch.Tensor  # (n,) bool
    rows: pd.DataFrame

    def numpy(self) -> np.ndarray:
        return self.values.numpy()

    def to_pandas(self) -> pd.DataFrame:
        """The manifest rows with the features beside them: one column per dimension ``f0..f{D-1}``
        for pooled rows; for a sequence entry a ``features`` column of ``(length, D)`` arrays (the
        valid steps only) and a ``length`` column. A ``valid`` column marks rows with features."""
        table = self.rows.reset_index(drop=True).copy()
        table["valid"] = self.valid.numpy()
        if self.lengths is None:
            dims = pd.DataFrame(self.values.numpy(), columns=[f"f{i}" for i in range(self.values.shape[1])])
            return pd.concat([table, dims], axis=1)
        lengths = self.lengths.numpy()
        table["length"] = lengths
        table["features"] = [row[:length] for row, length in zip(self.values.numpy(), lengths, strict=True)]
        return table


def load_features(store: Store, name: str, split: Literal["train", "val", "test"] | None = None, *,
                  pooling: Literal["mean", "last"] | None = None, fingerprint: str | None = None) -> Features:
    """One split (``None``: every row) of the entry ``name``, with its manifest rows.

    ``pooling`` pools a sequence entry to ``(n, D)`` over each row's valid steps (``mean`` or
    ``last``, as `mmpipe fit --pool` does); ``fingerprint`` (a prefix) picks one of several
    entries of the same name.

    >>> test = mmpipe.load_features(store, "sim1.m1.simulated", split="test")
    >>> test.values.shape, test.rows["y_shared"].head(2).tolist()
    """
    if split is not None and split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)} (or None for every row), not {split!r}")
    if pooling is not None and pooling not in POOLINGS:
        raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    entry = store.features(name, fingerprint_prefix=fingerprint)
    manifest = store.manifest_of(entry)
    part = store.load_split(entry, manifest, split)
    values, lengths = part.features.float(), part.lengths
    if lengths is not None and pooling is not None:
        values, lengths = pool(values, lengths.clamp_min(1), pooling), None  # a row without steps pools to 0
    elif pooling is not None:
        raise UserError(f"{name} holds pooled rows; pooling is for sequence entries")
    return Features(name, values, lengths, part.valid, part.rows)
