"""S3 speed (issue 15 point 7; run on demand).

    python tests/benchmarks/bench_s3.py moe  [--width 40] [--rows 128] [--steps 50] [--repeats 15]
    python tests/benchmarks/bench_s3.py fit  [--seed 0] [--set key=value ...]
    python tests/benchmarks/bench_s3.py routing --store DIR [--dataset simseq]

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
routing: for every published S3 run of --dataset in the store at DIR (fitted and probed by
     `mmpipe fit s3` / `mmpipe probe`), which experts the routers pick for each class of the task
     label on the **test** rows, per stage: Specialization's routers and Selection's. Per layer and
     modality, the mean routing distribution p̄_c (softmax over the N_E experts, averaged over the
     valid tokens of the rows of class c) and the Jensen–Shannon divergence JS(p̄_0, p̄_1) in nats
     (0: both classes routed alike; ln 2: to disjoint experts), with the mean per-token routing
     entropy. Mean over layers and modalities, per seed, then mean ± std over seeds.

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


def _js(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen–Shannon divergence (nats) of two distributions over the experts."""
    m = (p + q) / 2
    kl = lambda a, b: float((a * (a.clamp_min(1e-12).log() - b.clamp_min(1e-12).log())).sum())  # noqa: E731
    return (kl(p, m) + kl(q, m)) / 2


@torch.no_grad()
def bench_routing(root: str, dataset: str) -> None:
    from mmpipe.adapters.checkpoint import load_model
    from mmpipe.adapters.methods.s3 import S3Summary, as_sequences

    store = Store.open(Path(root))
    runs = [r for r in store.runs("s3") if r.record.dataset == dataset]
    if not runs:
        raise SystemExit(f"no s3 run of {dataset} in {root}")
    per_stage: dict[str, list[tuple[float, float]]] = {"specialization": [], "selection": []}
    for run in sorted(runs, key=lambda r: r.record.seed):
        model = load_model(run).eval()
        summary = S3Summary.from_history(run.record.history)
        data = load_features(store, dataset, {m: None for m in run.record.inputs})
        manifest = store.manifest(dataset, run.record.manifest_version)
        y = manifest.table[summary.target["name"]].to_numpy()
        y = (y >= summary.target["binarize_at"]) if summary.target["kind"] == "continuous" else y
        test = torch.as_tensor((manifest.table["split"] == "test").to_numpy() & data.valid.numpy())
        classes = sorted(set(y[test.numpy()].tolist()))[:2]
        scaled = model.scaler({m: as_sequences(v, None)[0] for m, v in data.values.items()})
        for stage, routers in (("specialization", "specialization"), ("selection", "current")):
            js, entropy = [], []
            for m in model.modalities:
                values, lengths = scaled[m], data.lengths[m]
                by_class = []
                for c in classes:
                    rows = torch.nonzero(test & torch.as_tensor(y == c)).squeeze(1)
                    _, routings = model.encode(m, values[rows, :int(lengths[rows].max())], lengths[rows], 0.0, routers)
                    by_class.append([r.probs.mean(0) for r in routings])  # per layer (N_E,)
                    entropy += [float(-(r.probs * r.probs.clamp_min(1e-12).log()).sum(1).mean()) for r in routings]
                js += [_js(p, q) for p, q in zip(*by_class, strict=True)]
            per_stage[stage].append((float(np.mean(js)), float(np.mean(entropy))))
            print(f"seed {run.record.seed} {stage}: JS(class routing) {np.mean(js):.4f} nats (max over layers "
                  f"{np.max(js):.4f}), token routing entropy {np.mean(entropy):.3f} (ln N_E = "
                  f"{np.log(model.config.n_experts):.3f})")
    for stage, values in per_stage.items():
        js, entropy = np.array(values).T
        print(f"{stage}: JS {js.mean():.4f} ± {js.std(ddof=1) if len(js) > 1 else 0:.4f}, entropy "
              f"{entropy.mean():.3f} ± {entropy.std(ddof=1) if len(entropy) > 1 else 0:.3f} over {len(js)} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("moe", "fit", "routing"))
    parser.add_argument("--store", default=None)
    parser.add_argument("--dataset", default="simseq")
    parser.add_argument("--width", type=int, default=40)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if args.part == "moe":
        bench_moe(args.width, args.rows, args.steps, args.repeats)
    elif args.part == "routing":
        bench_routing(args.store, args.dataset)
    else:
        bench_fit(args.seed, args.overrides)


if __name__ == "__main__":
    main()
