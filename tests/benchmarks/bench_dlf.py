"""DLF speed and behaviour (issue 16 point 7; run on demand, never by pytest).

    python tests/benchmarks/bench_dlf.py epoch  [--epochs 2] [--dir DIR]
    python tests/benchmarks/bench_dlf.py fit    [--seed 0] [--dir DIR]
    python tests/benchmarks/bench_dlf.py simseq [--seeds 0,1,2] [--n 2000] [--max-epochs 200] [--jobs 1]

epoch:  a MOSI-size synthetic set in MMSA's aligned_50.pkl layout (tests/affect_files.py: 1,284 /
        229 / 686 clips, 50 steps, text 768-d, audio 5-d, vision 20-d, text lengths 3..50, audio and
        vision lengths 1..50, the label in the first features of every valid step), ingested with
        `mmpipe ingest mosi`, then DLF's default config (MOSI's) trained for ``--epochs`` epochs on
        the CPU: wall and process CPU seconds per epoch (80 minibatches of 16, 8 Adam updates, one
        validation pass), and the same for a forward pass over the validation rows alone.
fit:    the whole fit of one seed on that set (early stopping, best checkpoint restored) and the
        transform of all 2,199 rows; target: under 10 minutes on 2 CPU cores.
simseq: DLF and late fusion (both on simseq's text/audio/vision; late fusion on the mean-pooled
        sequences, ``size=input``) for each seed, then the evaluator's probes on every component:
        DLF's own regression output on test (MSA metrics of ``sentiment``) beside late fusion's
        probe of its fused layer, and per component the probes of the labels whose owner is known
        (y_all shared, y_text / y_audio / y_vision specific, y_ta / y_tv / y_av pairs), with Δ.
        ``--max-epochs`` caps DLF's epochs (its early stopping may take long at lr 1e-4); ``--jobs``
        fits that many seeds at once in worker processes.

Numbers measured here, and what they mean: dlf_notes.md beside this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mmpipe.adapters.data import load_features
from mmpipe.adapters.methods.dlf import DLF, DLFConfig, DLFFit
from mmpipe.adapters.training import single_cpu_thread
from mmpipe.pipeline.datasets.affect import AffectConfig
from mmpipe.pipeline.ingest import ingest_file
from mmpipe.store.root import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.affect_files
from tests.affect_files import write  # noqa: E402

MOSI_SIZES = (1284, 229, 686)
INPUTS = {"text": None, "audio": None, "vision": None}


def mosi_store(folder: Path) -> Store:
    """The MOSI-size synthetic file, ingested (reused when ``folder`` already holds it)."""
    store = Store.open(folder / "store", create=True)
    if not store.manifest_versions("mosi"):
        path, _ = write("mmsa-aligned", folder / "data", "mosi", sizes=MOSI_SIZES)
        ingest_file(store, "mosi", AffectConfig(file=str(path)))
    return store


def bench_epoch(folder: Path, epochs: int) -> None:
    store = mosi_store(folder)
    data = load_features(store, "mosi", INPUTS)
    config = DLFConfig(device="cpu", max_epochs=epochs, early_stop=epochs + 1)
    fit = DLFFit(DLF, data, config, 0, None)
    print(f"rows train/val/test {[len(data.split_index[s]) for s in ('train', 'val', 'test')]}, "
          f"steps {[v.shape[1] for v in data.values.values()]}, dims {list(data.dims.values())}, "
          f"parameters {sum(p.numel() for p in fit.model.parameters()):,}, torch threads {torch.get_num_threads()}")
    wall, cpu = time.perf_counter(), time.process_time()
    model, history = fit.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{history['epochs']} epochs: {wall / epochs:.1f} s wall, {cpu / epochs:.1f} s CPU per epoch "
          f"({history['updates_per_epoch']} updates, {history['minibatches_skipped_per_epoch']} minibatches skipped)")
    with single_cpu_thread(torch.device("cpu")):
        val = data.split_index["val"]
        times = []
        for _ in range(3):
            started = time.perf_counter()
            model.predict({m: v[val] for m, v in data.values.items()},
                          {i.modality: i.lengths[val] for i in data.inputs})
            times.append(time.perf_counter() - started)
    print(f"validation forward ({len(val)} rows): {statistics.median(times):.2f} s wall (median of 3)")


def bench_fit(folder: Path, seed: int) -> None:
    store = mosi_store(folder)
    data = load_features(store, "mosi", INPUTS)
    wall, cpu = time.perf_counter(), time.process_time()
    model, history = DLF.fit(data, DLFConfig(device="cpu"), seed, progress=print)
    fitted = time.perf_counter() - wall
    parts = model.transform(data.values)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"fit: {history['epochs']} epochs ({history['reason']}, best {history['best_epoch']}, val L1 "
          f"{history['best_val']:.4f}), {fitted:.0f} s wall; with the transform of {len(data.valid)} rows "
          f"{wall:.0f} s wall, {cpu:.0f} s CPU ({'within' if wall < 600 else 'OVER'} the 10-minute target); "
          f"components {list(parts)}")


def _table(store: Store, sql: str) -> None:
    from mmpipe.evaluate.results import query

    result = query(store.results_db, sql)
    print(" | ".join(result.columns))
    for row in result.rows:
        print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    print()


def bench_simseq(seeds: list[int], n: int, max_epochs: int, jobs: int, folder: str | None) -> None:
    from mmpipe.adapters.registry import METHODS
    from mmpipe.evaluate.probes import probe_run
    from mmpipe.evaluate.results import save_probes
    from mmpipe.pipeline.datasets.simseq import SimseqConfig
    from mmpipe.pipeline.fit import fit_runs
    from mmpipe.pipeline.simulate import simulate

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(folder or tmp) / "store", create=True)  # a kept store: published fits are reused
        simulate(store, "simseq", SimseqConfig(n=n))
        started = time.perf_counter()
        config = DLFConfig(device="cpu", max_epochs=max_epochs)
        runs = [o.run for o in fit_runs(store, "dlf", "simseq", INPUTS, config, seeds, progress=print, jobs=jobs)]
        for run in runs:
            history = run.record.history
            print(f"dlf seed {run.record.seed}: {run.record.epochs} epochs ({history['reason']}, best "
                  f"{history['best_epoch']}, val L1 {history['best_val']:.3f}), {run.record.seconds:.0f} s")
        print(f"dlf: {len(seeds)} fits in {time.perf_counter() - started:.0f} s")
        late = METHODS.get("late-fusion").Config(size="input", target="sentiment", device="cpu")
        runs += [o.run for o in fit_runs(store, "late-fusion", "simseq", INPUTS, late, seeds, pooling="mean")]
        for run in runs:
            save_probes(store, run, probe_run(store, run))
        print("sentiment on test: DLF's own output (prediction), and probes of the fused layers")
        _table(store, "SELECT variant, component, metric, mean, std, n_seeds FROM probe_summary WHERE label = "
               "'sentiment' AND metric IN ('mae', 'corr', 'acc7', 'acc2_non0', 'f1_non0') AND component IN "
               "('prediction', 'fused') ORDER BY variant, component, metric")
        print("DLF's components: probes of the labels with a known owner (accuracy: higher is better; mse: lower)")
        _table(store, "SELECT label, component, metric, mean, std FROM probe_summary WHERE method = 'dlf' AND "
               "label <> 'sentiment' AND metric IN ('accuracy', 'mse') ORDER BY label, component")
        print("Δ (larger is better)")
        _table(store, "SELECT variant, label, metric, mean, std, n_seeds FROM delta_summary ORDER BY variant, label")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["epoch", "fit", "simseq"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--dir", default=None, help="keep the synthetic file and store here (default: a temp dir)")
    args = parser.parse_args()
    if args.part == "simseq":
        bench_simseq([int(s) for s in args.seeds.split(",")], args.n, args.max_epochs, args.jobs, args.dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir) if args.dir else Path(tmp)
        if args.part == "epoch":
            bench_epoch(folder, args.epochs)
        else:
            bench_fit(folder, args.seed)


if __name__ == "__main__":
    main()
