"""MultiLoReFT speed and expected behaviour (issue #3 benchmark; run on demand).

    python tests/benchmarks/bench_multiloreft.py loop   [--epochs 5]
    python tests/benchmarks/bench_multiloreft.py fit    [--seeds 0]
    python tests/benchmarks/bench_multiloreft.py behaviour [--seeds 0,1,2,3] [--datasets sim1,sim2]

loop:      epochs/s of the real training loop (device-resident tensors, minibatches by index
           permutation) vs the same model, losses and GradNorm fed by DataLoader(TensorDataset).
           Target ≥ 5x.
fit:       wall time of a full default 3-stage fit on Sim I (n = 10,000), per seed. Target ≤ 60 s.
behaviour: fits every seed on Sim I and Sim II, probes all components with the evaluator and
           prints learned ranks (paper Table 7) and the decoupling table with Δ (paper Table 1).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from torch.utils.data import DataLoader, TensorDataset

from mmpipe.adapters.data import load_paired
from mmpipe.adapters.fit import fit_runs
from mmpipe.adapters.gradnorm import GradNorm
from mmpipe.adapters.multiloreft import LOSS_NAMES, MultiLoReFT, MultiLoReFTConfig, Trainer
from mmpipe.adapters.training import minibatches
from mmpipe.evaluate import terminal
from mmpipe.evaluate.probes import probe_runs
from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
from mmpipe.evaluate.results import save_probes
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.datasets.sim2 import Sim2Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.root import Store

CONFIGS = {"sim1": Sim1Config(), "sim2": Sim2Config()}


def _store(root: Path, datasets: list[str]) -> Store:
    store = Store.open(root, create=True)
    for name in datasets:
        simulate(store, name, CONFIGS[name])
    return store


def bench_loop(store: Store, epochs: int) -> None:
    config = MultiLoReFTConfig(device="cpu")
    data = load_paired(store, "sim1", "m1", "m2")
    torch.set_num_threads(1)  # as during a real fit
    timings = {}
    for feeder in ("index permutation", "DataLoader(TensorDataset)"):
        trainer = Trainer(MultiLoReFT, data, config, seed=0, progress=None)
        names = LOSS_NAMES
        h1, h2 = trainer.train
        optimizer = trainer.make_optimizer("joint")
        gradnorm = GradNorm(len(names), config.gradnorm_alpha, config.gradnorm_lr)
        weights = torch.ones(len(names))
        loader = DataLoader(TensorDataset(h1, h2), batch_size=config.minibatch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(0))
        started = time.perf_counter()
        for _ in range(epochs):
            if feeder == "DataLoader(TensorDataset)":
                batches = iter(loader)
            else:
                batches = ((h1[i], h2[i]) for i in minibatches(len(h1), config.minibatch_size, trainer.generator,
                                                                trainer.device))
            trainer.train_epoch("joint", names, batches, optimizer, gradnorm, weights)
        timings[feeder] = epochs / (time.perf_counter() - started)
        print(f"{feeder:>28}: {timings[feeder]:.2f} epochs/s (joint stage, all losses, GradNorm)")
    ratio = timings["index permutation"] / timings["DataLoader(TensorDataset)"]
    print(f"speed-up {ratio:.2f}x (target >= 5x: {'met' if ratio >= 5 else 'MISSED'})")
    # the feeding alone, without the training step, to show what the permutation saves
    feed = {}
    for feeder in ("index permutation", "DataLoader(TensorDataset)"):
        started = time.perf_counter()
        for _ in range(epochs):
            if feeder == "DataLoader(TensorDataset)":
                rows = sum(len(b1) + len(b2) for b1, b2 in loader)
            else:
                rows = sum(len(h1[i]) + len(h2[i]) for i in minibatches(len(h1), config.minibatch_size,
                                                                         trainer.generator, trainer.device))
        feed[feeder] = epochs / (time.perf_counter() - started)
        assert rows == 2 * (len(h1) - len(h1) % config.minibatch_size)  # both fed the same rows
        print(f"{feeder:>28}: {feed[feeder]:.0f} epochs/s of batches alone (no training step)")
    print(f"feeding alone: {feed['index permutation'] / feed['DataLoader(TensorDataset)']:.0f}x")


def bench_fit(store: Store, seeds: list[int]) -> None:
    config = MultiLoReFTConfig(device="cpu")
    for seed in seeds:
        started = time.perf_counter()
        [outcome] = fit_runs(store, "multiloreft", "sim1", "m1", "m2", config, [seed])
        wall = time.perf_counter() - started
        record = outcome.run.record
        stages = ", ".join(f"{h['stage']} {h['end_epoch'] - h['start_epoch']} ({h['reason']})"
                           for h in record["stage_history"])
        ranks = {k: v["final"] for k, v in record["ranks"].items()}
        print(f"seed {seed}: {wall:.1f} s wall, {record['epochs']} epochs [{stages}], ranks {ranks} "
              f"(target <= 60 s: {'met' if wall <= 60 else 'MISSED'})")


def bench_behaviour(store: Store, seeds: list[int], datasets: list[str], jobs: int) -> None:
    config = MultiLoReFTConfig(device="cpu")
    started = time.perf_counter()
    runs = []
    for name in datasets:
        for outcome in fit_runs(store, "multiloreft", name, "m1", "m2", config, seeds, jobs=jobs):
            runs.append(outcome.run)
            print(f"{name} seed {outcome.run.record['seed']}: {outcome.run.record['seconds']:.1f} s, "
                  f"ranks { {k: v['final'] for k, v in outcome.run.record['ranks'].items()} }", flush=True)
    print(f"fits: {time.perf_counter() - started:.0f} s")
    probe_runs(store, runs, on_done=lambda run, outcome: save_probes(store, run, outcome))
    console = Console(width=160)
    for group in terminal.render_document(build_report(load_report_data(store.results_db, ReportFilters()),
                                                       ("decoupling", "ranks"))):
        console.print(group)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["loop", "fit", "behaviour"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--datasets", default="sim1,sim2")
    parser.add_argument("--jobs", type=int, default=2, help="seeds fitted in parallel (behaviour)")
    parser.add_argument("--store", default=None, help="reuse a store (default: a temporary one)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = args.datasets.split(",")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(args.store or tmp) / "store", datasets if args.part == "behaviour" else ["sim1"])
        if args.part == "loop":
            bench_loop(store, args.epochs)
        elif args.part == "fit":
            bench_fit(store, seeds)
        else:
            bench_behaviour(store, seeds, datasets, args.jobs)


if __name__ == "__main__":
    main()
