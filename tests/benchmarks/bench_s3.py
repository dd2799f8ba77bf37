"""S3 speed (issue 15 point 7; run on demand).

    python tests/benchmarks/bench_s3.py moe  [--width 40] [--rows 128] [--steps 50] [--repeats 15]
    python tests/benchmarks/bench_s3.py fit  [--seed 0] [--set key=value ...]

moe: forward + backward of one MoE layer (G = 8, E = 8, top-k = 8, d_ff = 4d) against a dense FFN
     of the same active width (d → 4d → d) on the same tokens (rows × steps, both views of S3's
     Specialization batch by default: 2 · 128 · 50), measured in one run, interleaved, one CPU
     thread; the minimum CPU time of the repeats (the machine is shared). Two settings: "compute" (no
     dropout, no router noise: the routing and dispatch against the FFN) and "Specialization" (the
     training step's extras: router noise σ = 1/N_E in the MoE, dropout 0.1 inside both).
     Target ≤ 3×.
fit: a full three-stage S3 fit of one seed (the method's defaults unless --set) on a MOSI-size
     synthetic set: 2,199 clips × 50 steps, vision 20-d and text 300-d (MultiBench MOSI's
     FactorCL inputs), a binary label, MOSI's split sizes (1,284 / 229 / 686), then the transform
     `mmpipe fit` runs to publish the components. Prints the stage times and epochs, wall and CPU
     time (a fit runs on one intra-op thread, so on a shared machine its CPU time is the time it
     would take alone). Target ≤ 10 min.

The measured figures and what they depend on: s3_notes.md beside this file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmpipe.adapters import METHODS
from mmpipe.adapters.data import load_features
from mmpipe.adapters.moe import MoEFeedForward
from mmpipe.store.config import apply_overrides
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from mmpipe.store.root import Store


def bench_moe(width: int, rows: int, steps: int, repeats: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = rows * steps
    x = torch.randn(n, width, requires_grad=True)
    for label, dropout, noise in (("compute", 0.0, 0.0), ("Specialization", 0.1, 1.0 / 64)):
        moe = MoEFeedForward(width, 4 * width, granularity=8, expansion=8, dropout=dropout).train()
        dense = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                    torch.nn.Linear(4 * width, width)).train()
        grad = torch.randn(n, width)

        def run_moe(moe=moe, noise=noise, grad=grad) -> None:
            moe(x, noise_std=noise)[0].backward(grad)

        def run_dense(dense=dense, grad=grad) -> None:
            dense(x).backward(grad)

        times: dict[str, list[float]] = {"moe": [], "dense": []}
        for _ in range(2):
            run_moe(), run_dense()
        for _ in range(repeats):
            for name, fn in (("moe", run_moe), ("dense", run_dense)):
                started = time.process_time()  # CPU time: on a shared machine, what a free core would take
                fn()
                times[name].append(time.process_time() - started)
        m, d = min(times["moe"]), min(times["dense"])
        kernel = "grouped matmul" if moe.uses_grouped_mm(x) else "padded blocks"
        print(f"[{label}] width {width}, {n} tokens, {moe.n_experts} experts of {moe.hidden}, top-{moe.top_k} "
              f"({kernel}): MoE {m * 1e3:.1f} ms, dense FFN {d * 1e3:.1f} ms (fwd+bwd CPU time, min of {repeats}) "
              f"→ {m / d:.2f}× (target ≤ 3×)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def mosi_size_store(root: Path, seed: int = 0, n: int = 2199, steps: int = 50,
                    dims: tuple[int, int] = (20, 300)) -> Store:
    """A synthetic MOSI-size set: a binary label carried by a label-dependent direction at a few
    random steps of each modality, plus unit Gaussian noise; every clip 50 steps long."""
    store = Store.open(root, create=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    n_train, n_val = round(n * 1284 / 2199), round(n * 229 / 2199)  # MOSI's split sizes at n = 2,199
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val))
    rng.shuffle(split)
    table = pd.DataFrame({"sample_id": [f"mosisize-{i:05d}" for i in range(n)], "split": split,
                          "group": pd.Series([None] * n, dtype="object"), "y": y})
    manifest = Manifest("mosisize", table, (LabelSpec("y", "categorical", "joint", "binary class"),),
                        (Modality("vision", "features"), Modality("text", "features")), "fixed MOSI-size split")
    version = store.save_manifest(manifest)
    for modality, dim in zip(("vision", "text"), dims, strict=True):
        direction = rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim) * 3
        values = rng.standard_normal((n, steps, dim)).astype(np.float32)
        marked = rng.random((n, steps)) < 0.2  # the steps that carry the label
        values += marked[:, :, None] * (2 * y - 1)[:, None, None] * direction
        with store.writer(f"mosisize.{modality}.seq", {"modality": modality, "seed": seed}, n_rows=n, dim=dim,
                          steps=steps, dtype="float32") as writer:
            for index in writer.pending_chunks():
                start, stop = writer.chunk_bounds(index)
                writer.write_chunk(index, values[start:stop], lengths=np.full(stop - start, steps))
            writer.publish({"dataset": "mosisize", "manifest_version": version})
    return store


def bench_fit(seed: int, overrides: list[str]) -> None:
    cls = METHODS.get("s3")
    config = apply_overrides(cls.Config(device="cpu"), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        store = mosi_size_store(Path(tmp) / "store")
        data = load_features(store, "mosisize", {"vision": None, "text": None})
        started, cpu_started = time.perf_counter(), time.process_time()
        model, history = cls.fit(data, config, seed, progress=print)
        fitted = time.perf_counter() - started
        model.transform(data.values)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    timings = history["timings"]
    stages = {row["stage"]: row for row in history["stage_history"]}
    print("stages: " + "; ".join(f"{name} epochs {row['start_epoch']}→{row['end_epoch']} ({row['reason']})"
                                 for name, row in stages.items()))
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"full three-stage fit {fitted:.0f} s + the workflow's transform → {total:.0f} s = {total / 60:.1f} min wall, "
          f"{cpu / 60:.1f} min of CPU time (target ≤ 10 min); rho chosen on val {history['s3']['rho_val']}; "
          f"val accuracy {history['s3']['val_accuracy']}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (a fit runs one thread: on a busy machine its CPU time is what a free core "
          "would take)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("moe", "fit"))
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if args.part == "moe":
        bench_moe(args.width, args.rows, args.steps, args.repeats)
    else:
        bench_fit(args.seed, args.overrides)


if __name__ == "__main__":
    main()
