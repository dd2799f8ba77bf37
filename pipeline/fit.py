"""Fit a registered adapter method on cached features and publish one run per seed.

The workflow around a method's own ``fit``: load the chosen inputs (modality → feature), refuse
inputs the method cannot take, fill config values that come from other runs (the baselines'
sizes), skip seeds already published, fit the rest (optionally in worker processes), and publish
each run with its typed record.

``on_epoch(seed, event)`` receives each seed's epoch progress (`adapters.progress.EpochEvent`:
stage, epochs done, the stage's cap), from worker processes too (``jobs`` > 1), for a progress bar.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmpipe.adapters.base import AdapterMethod, ProgressFn
from mmpipe.adapters.data import MultimodalFeatures, load_features
from mmpipe.adapters.progress import EpochEvent, listening
from mmpipe.adapters.registry import METHODS
from mmpipe.pipeline.sizes import resolve_sizes
from mmpipe.pipeline.workers import send_event, worker_pool
from mmpipe.store.errors import UserError
from mmpipe.store.provenance import code_version
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry, RunRecord, find_run, publish_run

Inputs = Mapping[str, str | None]  # modality -> feature name (None: the only one stored)
DEFAULT_POOLING = "mean"  # a sequence given to a pooled-input method: the mean over its valid steps
EpochFn = Callable[[int, EpochEvent], None]  # (seed, event)


@dataclass(frozen=True)
class FitOutcome:
    run: RunEntry
    reused: bool


def run_key(data: MultimodalFeatures, config: Any, seed: int) -> dict[str, Any]:
    """Everything that determines a run's result: the data entries, the resolved config, the seed."""
    return {
        "dataset": data.dataset,
        "manifest_version": data.manifest_version,
        "inputs": [[i.modality, i.entry.name, i.entry.fingerprint, *([i.pooled_by] if i.pooled_by else [])]
                   for i in data.inputs],
        "config": dataclasses.asdict(config),
        "seed": seed,
    }


def load_checked(store: Store, method: str, dataset: str, inputs: Inputs, data_version: str | None,
                 pooling: str | None = None) -> tuple[type[AdapterMethod], MultimodalFeatures]:
    """Load the inputs for ``method`` and refuse (one line) a number or kind it does not take.
    A sequence feature given to a pooled-input method is pooled: ``pooling`` (mean or last), by
    default `DEFAULT_POOLING`; the run records how."""
    cls = METHODS.get(method)
    low, high = cls.modality_count
    if len(inputs) < low or (high is not None and len(inputs) > high):
        cls.check_inputs(dict.fromkeys(inputs, "pooled"))  # refuses the count before loading anything
    if pooling is None and "sequence" not in cls.input_kinds:
        pooling = DEFAULT_POOLING
    data = load_features(store, dataset, inputs, data_version, pooling)
    cls.check_inputs(data.kinds)
    return cls, data


def fit_runs(store: Store, method: str, dataset: str, inputs: Inputs, config: Any, seeds: list[int],
             data_version: str | None = None, progress: ProgressFn | None = None, jobs: int = 1,
             on_done: Callable[[FitOutcome], None] | None = None,
             seed_configs: dict[int, Any] | None = None, pooling: str | None = None,
             on_epoch: EpochFn | None = None) -> list[FitOutcome]:
    """Fit ``method`` once per seed; a seed whose run is already published is not refitted.

    ``config`` is what was asked for (it names the variant); ``seed_configs`` may give a seed its
    own version of it (e.g. sizes from a chosen MultiLoReFT run), which is then resolved as usual.
    With ``jobs`` > 1 the seeds to fit run in that many worker processes (each fit is
    single-threaded on the CPU, so two cores fit two seeds at once); results are the same as
    sequential fits because every run depends only on its data, config and seed. ``pooling``
    pools sequence features for a method that takes pooled inputs (part of the run key).
    ``on_epoch(seed, event)`` is called after every epoch of every seed fitted here.
    """
    cls, data = load_checked(store, method, dataset, inputs, data_version, pooling)
    chosen = {i.modality: i.entry.name.rsplit(".", 1)[-1] for i in data.inputs}
    done: dict[int, FitOutcome] = {}
    configs = {}  # seed -> config resolved for that seed (e.g. sizes from that seed's MultiLoReFT run)
    todo = []
    for seed in seeds:
        configs[seed] = resolve_sizes((seed_configs or {}).get(seed, config), store, data, seed)
        existing = find_run(store.runs_dir, method, run_key(data, configs[seed], seed))
        if existing is not None:
            done[seed] = FitOutcome(existing, reused=True)
            if on_done is not None:
                on_done(done[seed])
        else:
            todo.append(seed)
    if jobs > 1 and len(todo) > 1:
        relay = (lambda item: on_epoch(*item)) if on_epoch is not None else None
        with worker_pool(min(jobs, len(todo)), on_event=relay) as pool:
            futures = {pool.submit(_fit_in_worker, store.root, method, dataset, chosen, configs[seed], config,
                                   seed, data.manifest_version, pooling): seed for seed in todo}
            for future in as_completed(futures):
                done[futures[future]] = FitOutcome(RunEntry.open(future.result()), reused=False)
                if on_done is not None:
                    on_done(done[futures[future]])
    else:
        for seed in todo:
            with listening(None if on_epoch is None else functools.partial(on_epoch, seed)):
                done[seed] = _fit_one(store, cls, data, configs[seed], config, seed, progress)
            if on_done is not None:
                on_done(done[seed])
    return [done[seed] for seed in seeds]


def _fit_in_worker(root: Path, method: str, dataset: str, inputs: dict[str, str], config: Any, requested: Any,
                   seed: int, data_version: str, pooling: str | None) -> Path:
    store = Store(root)
    cls, data = load_checked(store, method, dataset, inputs, data_version, pooling)
    with listening(lambda event: send_event((seed, event))):  # to the parent's on_epoch, if it listens
        return _fit_one(store, cls, data, config, requested, seed, None).run.path


def _refuse_non_finite(method: str, components: Mapping[str, Any], data: MultimodalFeatures) -> None:
    """The last guard before publishing: a component with NaN or Inf in a valid row is a diverged
    fit, never a fitted run (the training loops stop at the epoch where a loss diverged; this
    catches what they cannot see, e.g. an overflow in the final transform)."""
    for name, values in components.items():
        bad = int((~torch.isfinite(values[data.valid])).flatten(1).any(dim=1).sum())
        if bad:
            raise UserError(f"{method} diverged: component {name} is NaN or infinite in {bad} of "
                            f"{int(data.valid.sum())} valid rows of {data.dataset}; nothing was published "
                            "(lower lr, or check the config values the losses depend on)")


def _fit_one(store: Store, cls: type[AdapterMethod], data: MultimodalFeatures, config: Any, requested: Any,
             seed: int, progress: ProgressFn | None) -> FitOutcome:
    """``config`` is resolved for this seed; ``requested`` (what the user asked for) names the
    variant, so per-seed resolved values never split one setup into several."""
    key = run_key(data, config, seed)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    started = time.perf_counter()
    model, history = cls.fit(data, config, seed, progress)
    model = model.cpu()
    transform_started = time.perf_counter()
    components = model.transform(data.values, data.lengths)
    _refuse_non_finite(cls.name, components, data)
    timings = {**history.pop("timings", {}), "transform_s": time.perf_counter() - transform_started}
    epochs, ranks = history.pop("epochs", None), history.pop("ranks", None)
    n_params = history.pop("n_params", None)
    if n_params is None:
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    record = RunRecord(
        method=cls.name, dataset=data.dataset, manifest_version=data.manifest_version,
        inputs={i.modality: i.entry.name for i in data.inputs},
        input_fingerprints={i.modality: i.entry.fingerprint for i in data.inputs},
        seed=seed, config=dataclasses.asdict(config), ablation=cls.ablation(requested),
        settings=cls.settings(requested), dims=data.dims, components=list(components), started_at=started_at,
        seconds=time.perf_counter() - started, code_version=code_version(), n_params=n_params,
        split_protocol=data.manifest.split_protocol, epochs=epochs, ranks=ranks, timings=timings, history=history,
        pooling={i.modality: i.pooled_by for i in data.inputs if i.pooled_by})
    run = publish_run(store.runs_dir, cls.name, key, record, components, data.valid.numpy(),
                      {k: v.detach() for k, v in model.state_dict().items()})
    return FitOutcome(run, reused=False)
