"""Synthetic adapter runs over a simulated dataset, for the evaluator's tests.

Components are built from the manifest's own labels, so their content is known: ``z_s`` carries
the shared label y_s, ``z_m1`` carries y_m1, ``z_m2`` carries y_m2 (each plus noise of scale
``leak``-controlled), ``phi*`` are pure noise and ``fused`` concatenates z_s, z_m1, z_m2.
"""

from __future__ import annotations

import numpy as np
import torch

from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.runs import code_version, publish_run


def simulate_sim1(store, n=600, seed=0):
    return simulate(store, "sim1", Sim1Config(n=n, seed=seed))


def synthetic_components(manifest, seed, noise=0.05, leak=0.0):
    """Components of a perfect decoupling (``leak`` mixes y_s into the private parts)."""
    rng = np.random.default_rng(seed)
    table = manifest.table
    n = len(table)
    y_s = table["y_s"].to_numpy()
    bits = np.stack([y_s // 2, y_s % 2], axis=1).astype(np.float32)
    z_s = bits + noise * rng.normal(size=(n, 2))
    z_m1 = np.stack([table["y_m1"], rng.normal(size=n)], axis=1) + noise * rng.normal(size=(n, 2))
    z_m2 = np.stack([table["y_m2"], rng.normal(size=n)], axis=1) + noise * rng.normal(size=(n, 2))
    z_m1 = z_m1 + leak * bits
    z_m2 = z_m2 + leak * bits
    parts = {"z_s1": z_s + noise * rng.normal(size=(n, 2)), "z_s2": z_s + noise * rng.normal(size=(n, 2)),
             "z_m1": z_m1, "z_m2": z_m2, "phi1": rng.normal(size=(n, 4)), "phi2": rng.normal(size=(n, 4)),
             "z_s": z_s, "fused": np.hstack([z_s, z_m1, z_m2])}
    return {k: np.asarray(v, dtype=np.float32) for k, v in parts.items()}


def publish_synthetic(store, version, seed=0, method="multiloreft", ablation=None, components=None,
                      valid=None, **extra_config):
    manifest = store.manifest("sim1", version)
    components = synthetic_components(manifest, seed) if components is None else components
    config = {"dataset": "sim1", "seed": seed, "rank": 10, **extra_config}
    if ablation:
        config["ablation"] = ablation
    n = len(manifest)
    record = {
        "dataset": "sim1", "manifest_version": version, "m1": "sim1.m1", "m2": "sim1.m2", "seed": seed,
        "config": config, "started_at": "2025-01-01T00:00:00", "seconds": 1.5, "n_params": 1234,
        "ranks": {"z_s": {"initial": 10, "final": 5 + seed % 2}, "z_m1": {"initial": 10, "final": 4},
                  "z_m2": {"initial": 10, "final": 5}},
        "rank_history": [{"epoch": e, "stage": st, "z_s": max(10 - e, 5), "z_m1": max(10 - e, 4),
                          "z_m2": max(10 - e, 5)} for e, st in enumerate(["shared"] * 3 + ["private"] * 3 + ["joint"] * 6)],
        "stage_history": [{"stage": "shared", "start_epoch": 0, "end_epoch": 2},
                          {"stage": "private", "start_epoch": 3, "end_epoch": 5},
                          {"stage": "joint", "start_epoch": 6, "end_epoch": 11}],
        "timings": {"fit_s": 1.5}, "code_version": code_version(),
    }
    valid = np.ones(n, dtype=bool) if valid is None else valid
    return publish_run(store.runs_dir, method, config, record, components, valid, {"w": torch.zeros(2)})
