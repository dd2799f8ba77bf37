"""Fit a registered adapter method on cached features and publish one run per seed."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
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
             data_version: str | None = None, progress: ProgressFn | None = None, jobs: int = 1,
             on_done: Callable[[FitOutcome], None] | None = None,
             seed_configs: dict[int, Any] | None = None) -> list[FitOutcome]:
    """Fit ``method`` once per seed; a seed whose run is already published is not refitted.

    ``config`` is what was asked for (it names the variant); ``seed_configs`` may give a seed its
    own version of it (e.g. sizes from a chosen MultiLoReFT run), which is then resolved as usual.
    With ``jobs`` > 1 the seeds to fit run in that many worker processes (each fit is
    single-threaded on the CPU, so two cores fit two seeds at once); results are the same as
    sequential fits because every run depends only on its data, config and seed.
    """
    cls = METHODS.get(method)
    data = load_paired(store, dataset, m1, m2, data_version)
    done: dict[int, FitOutcome] = {}
    configs = {}  # seed -> config resolved for that seed (e.g. sizes from that seed's MultiLoReFT run)
    todo = []
    for seed in seeds:
        configs[seed] = cls.resolve_config((seed_configs or {}).get(seed, config), store, data, seed)
        existing = find_run(store.runs_dir, method, run_key(method, data, configs[seed], seed))
        if existing is not None:
            done[seed] = FitOutcome(existing, reused=True)
            if on_done is not None:
                on_done(done[seed])
        else:
            todo.append(seed)
    if jobs > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context) as pool:
            futures = {pool.submit(_fit_in_worker, store.root, method, dataset, m1, m2, configs[seed], config,
                                   seed, data.manifest_version): seed for seed in todo}
            for future in as_completed(futures):
                done[futures[future]] = FitOutcome(RunEntry.open(future.result()), reused=False)
                if on_done is not None:
                    on_done(done[futures[future]])
    else:
        for seed in todo:
            done[seed] = _fit_one(store, cls, method, data, configs[seed], config, seed, progress)
            if on_done is not None:
                on_done(done[seed])
    return [done[seed] for seed in seeds]


def _fit_in_worker(root: Path, method: str, dataset: str, m1: str, m2: str, config: Any, requested: Any,
                   seed: int, data_version: str) -> Path:
    store = Store(root)
    data = load_paired(store, dataset, m1, m2, data_version)
    return _fit_one(store, METHODS.get(method), method, data, config, requested, seed, None).run.path


def _fit_one(store: Store, cls: type, method: str, data: PairedFeatures, config: Any, requested: Any, seed: int,
             progress: ProgressFn | None) -> FitOutcome:
    """``config`` is resolved for this seed; ``requested`` (what the user asked for) names the
    variant, so per-seed resolved values never split one setup into several."""
    key = run_key(method, data, config, seed)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    started = time.perf_counter()
    model, history = cls.fit(data, config, seed, progress)
    model = model.cpu()
    transform_started = time.perf_counter()
    components = model.transform(data.h1, data.h2)
    timings = {**history.pop("timings", {}), "transform_s": time.perf_counter() - transform_started}
    record = {
        "dataset": data.dataset, "manifest_version": data.manifest_version, "m1": data.m1.name, "m2": data.m2.name,
        "seed": seed, "config": dataclasses.asdict(config), "started_at": started_at,
        "seconds": time.perf_counter() - started, "code_version": code_version(),
        "n_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "dims": [data.h1.shape[1], data.h2.shape[1]], "timings": timings,
        "split_protocol": data.manifest.split_protocol, "ablation": cls.ablation(requested),
        "settings": cls.settings(requested), **history,
    }
    run = publish_run(store.runs_dir, method, key, record, components, data.valid.numpy(),
                      {k: v.detach() for k, v in model.state_dict().items()})
    return FitOutcome(run, reused=False)


def load_model(run: RunEntry) -> torch.nn.Module:
    """Rebuild a run's trained model from its checkpoint."""
    cls = METHODS.get(run.method)
    config = cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in run.record["config"].items()})
    return cls.from_state(config, tuple(run.record["dims"]), run.state_dict())
