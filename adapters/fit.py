"""Fit a registered adapter method on cached features and publish one run per seed."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch

from mmpipe.adapters.base import ProgressFn
from mmpipe.adapters.data import PairedFeatures, load_paired
from mmpipe.adapters.registry import METHODS
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry, code_version, find_run, publish_run


@dataclass(frozen=True)
class FitOutcome:
    run: RunEntry
    reused: bool


def run_key(method: str, data: PairedFeatures, config: Any, seed: int) -> dict[str, Any]:
    """Everything that determines a run's result: the data entries, the resolved config, the seed."""
    return {
        "dataset": data.dataset,
        "manifest_version": data.manifest_version,
        "m1": data.m1.name, "m1_fingerprint": data.m1.fingerprint,
        "m2": data.m2.name, "m2_fingerprint": data.m2.fingerprint,
        "config": dataclasses.asdict(config),
        "seed": seed,
    }


def fit_runs(store: Store, method: str, dataset: str, m1: str, m2: str, config: Any, seeds: list[int],
             data_version: str | None = None, progress: ProgressFn | None = None) -> list[FitOutcome]:
    """Fit ``method`` once per seed; a seed whose run is already published is not refitted."""
    cls = METHODS.get(method)
    data = load_paired(store, dataset, m1, m2, data_version)
    outcomes = []
    requested = config
    for seed in seeds:
        config = cls.resolve_config(requested, store, data, seed)
        key = run_key(method, data, config, seed)
        existing = find_run(store.runs_dir, method, key)
        if existing is not None:
            outcomes.append(FitOutcome(existing, reused=True))
            continue
        started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        started = time.perf_counter()
        model, history = cls.fit(data, config, seed, progress)
        model = model.cpu()
        transform_started = time.perf_counter()
        components = model.transform(data.h1, data.h2)
        timings = {**history.pop("timings", {}), "transform_s": time.perf_counter() - transform_started}
        record = {
            "dataset": dataset, "manifest_version": data.manifest_version, "m1": data.m1.name, "m2": data.m2.name,
            "seed": seed, "config": dataclasses.asdict(config), "started_at": started_at,
            "seconds": time.perf_counter() - started, "code_version": code_version(),
            "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "dims": [data.h1.shape[1], data.h2.shape[1]], "timings": timings,
            "split_protocol": data.manifest.split_protocol, "ablation": cls.ablation(config), **history,
        }
        run = publish_run(store.runs_dir, method, key, record, components, data.valid.numpy(),
                          {k: v.detach() for k, v in model.state_dict().items()})
        outcomes.append(FitOutcome(run, reused=False))
    return outcomes


def load_model(run: RunEntry) -> torch.nn.Module:
    """Rebuild a run's trained model from its checkpoint."""
    cls = METHODS.get(run.method)
    config = cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in run.record["config"].items()})
    return cls.from_state(config, tuple(run.record["dims"]), run.state_dict())
