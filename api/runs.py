"""Adapter runs from Python: fit a method for seeds, list runs, read a run's components by split,
and rebuild a fitted adapter to apply it to new embeddings.

`fit` is `mmpipe fit`'s workflow (`mmpipe.pipeline.fit.fit_runs`): the method's defaults for the
dataset, then ``config``; a seed already fitted with that config is found, not refitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from mmpipe.adapters.base import AdapterMethod
from mmpipe.adapters.checkpoint import load_model
from mmpipe.adapters.data import resolve_version
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.training import resolve_device
from mmpipe.pipeline.defaults import default_config
from mmpipe.pipeline.fit import fit_runs
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SPLITS
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

__all__ = ["Components", "fit", "list_runs", "load_adapter", "load_components"]

Run = RunEntry | str  # a run, or its id (or a unique prefix of it)


def run_entry(store: Store, run: Run) -> RunEntry:
    """``run`` itself, or the stored run with that id (or unique id prefix)."""
    return run if isinstance(run, RunEntry) else store.run(run)


def fit(store: Store, method: str, dataset: str, inputs: Mapping[str, str | None] | Sequence[str] | None = None, *,
        seeds: Sequence[int] = (0,), config: Mapping[str, Any] | None = None, data_version: str | None = None,
        pooling: Literal["mean", "last"] | None = None, jobs: int = 1) -> list[RunEntry]:
    """Fit ``method`` on ``dataset``'s cached features, one run per seed; returns the runs in seed order.

    ``inputs`` maps each modality to its feature (``None``: the only one stored), in the order
    the method sees them; a list names modalities only; default: every modality of the dataset.
    ``config`` holds config fields (typed values, checked as ``--config`` checks a JSON file).

    >>> runs = mmpipe.fit(store, "multiloreft", "sim1", seeds=[0, 1], config={"max_epochs": 20})
    >>> runs[0].run_id, runs[0].record.components
    """
    cls = METHODS.get(method)
    chosen = apply_overrides(default_config(cls.Config, method, dataset), dict(config or {}))
    device = getattr(chosen, "device", None)
    if device is not None:
        resolve_device(device)  # a device this machine lacks is refused before any data is read
    if inputs is None:
        inputs = dict.fromkeys(resolve_version(store, dataset, data_version).modality_names)
    elif not isinstance(inputs, Mapping):
        inputs = dict.fromkeys(inputs)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must be distinct integers, at least one, not {list(seeds)}")
    outcomes = fit_runs(store, method, dataset, dict(inputs), chosen, list(seeds), data_version, jobs=jobs,
                        pooling=pooling)
    return [outcome.run for outcome in outcomes]


def list_runs(store: Store, method: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """One row per run (of ``method`` / ``dataset``): run_id, method, dataset, seed, inputs,
    ablation, components, epochs, seconds.

    >>> mmpipe.list_runs(store, "multiloreft")["run_id"].tolist()
    """
    rows = [{"run_id": run.run_id, "method": run.method, "dataset": run.record.dataset, "seed": run.record.seed,
             "inputs": dict(run.record.inputs), "ablation": run.record.ablation,
             "components": list(run.record.components), "epochs": run.record.epochs, "seconds": run.record.seconds}
            for run in store.runs(method) if dataset is None or run.record.dataset == dataset]
    return pd.DataFrame(rows, columns=["run_id", "method", "dataset", "seed", "inputs", "ablation", "components",
                                       "epochs", "seconds"])


@dataclass(frozen=True)
class Components:
    """A run's components for one split (or every row), rows in manifest order.

    ``values`` maps each component (e.g. ``z_s``, ``z_m1``) to float32 ``(n, r)``; ``valid`` is
    False for rows whose inputs were invalid (they hold no values); ``rows`` are the manifest
    rows (sample_id, split, group, labels).
    """

    run_id: str
    values: dict[str, torch.Tensor]
    valid: torch.Tensor  # (n,) bool
    rows: pd.DataFrame

    def numpy(self) -> dict[str, np.ndarray]:
        return {name: value.numpy() for name, value in self.values.items()}

    def to_pandas(self) -> pd.DataFrame:
        """The manifest rows, a ``valid`` column, and one column per component dimension
        (``z_s_0``, ``z_s_1``, ...)."""
        parts = [self.rows.reset_index(drop=True), pd.DataFrame({"valid": self.valid.numpy()})]
        parts += [pd.DataFrame(value.numpy(), columns=[f"{name}_{i}" for i in range(value.shape[1])])
                  for name, value in self.values.items()]
        return pd.concat(parts, axis=1)


def load_components(store: Store, run: Run, split: Literal["train", "val", "test"] | None = None,
                    names: Sequence[str] | None = None) -> Components:
    """The components ``names`` (default: all) of ``run`` for one split (``None``: every row).

    >>> test = mmpipe.load_components(store, runs[0], split="test")
    >>> test.values["z_s"].shape, test.rows["y_shared"].head(2).tolist()
    """
    if split is not None and split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)} (or None for every row), not {split!r}")
    entry = run_entry(store, run)
    manifest = store.manifest(entry.record.dataset, entry.record.manifest_version)
    values = entry.components(list(names) if names is not None else None)
    valid = torch.from_numpy(entry.valid())
    if len(valid) != len(manifest):
        raise UserError(f"run {entry.run_id} has {len(valid)} rows but manifest {entry.record.dataset} has "
                        f"{len(manifest)}")
    if split is None:
        return Components(entry.run_id, values, valid, manifest.table.reset_index(drop=True))
    mask = manifest.split_mask(split)
    index = torch.from_numpy(mask.nonzero()[0])
    return Components(entry.run_id, {name: value[index] for name, value in values.items()}, valid[index],
                      manifest.table.loc[mask].reset_index(drop=True))


def load_adapter(store: Store, run: Run) -> AdapterMethod:
    """The fitted adapter of ``run``, rebuilt from its checkpoint (CPU, eval mode).

    Apply it to new embeddings of the same encoders with ``model.transform(inputs, lengths)``:
    ``inputs`` maps each modality of the run (``run.record.inputs``) to float32 ``(N, D)`` (or
    ``(N, T, D)`` with ``lengths`` ``(N,)`` for a method that takes sequences); it returns the
    named components, as stored for the run's own rows.

    >>> model = mmpipe.load_adapter(store, runs[0])
    >>> z = model.transform({"m1": x1, "m2": x2})["z_s"]
    """
    model = load_model(run_entry(store, run))
    model.eval()
    return model
