"""Synthetic adapter runs, for the evaluator's tests: typed run records published directly (no
method is fitted), with components whose content is known.

- Simulation I (modalities m1, m2): ``z_s`` carries the shared label y_s, ``z_m1`` carries y_m1,
  ``z_m2`` carries y_m2 (each plus noise; ``leak`` mixes y_s into the private parts),
  ``z_s_m1`` / ``z_s_m2`` are noisy copies of z_s, ``phi_m1`` / ``phi_m2`` pure noise and
  ``fused`` concatenates z_s, z_m1, z_m2.
- ``tri``: a three-modality dataset (text, audio, vision) with a shared label, one label owned by
  each modality and a joint label; ``z_<k>`` carries the label of modality k, ``z_s`` the shared one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmpipe.adapters.components import FUSED, SHARED, per_modality, shared_part, specific
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from mmpipe.store.provenance import code_version
from mmpipe.store.runs import RunRecord, publish_run

SIM = ("m1", "m2")
TRI = ("text", "audio", "vision")


def simulate_sim1(store, n=600, seed=0):
    return simulate(store, "sim1", Sim1Config(n=n, seed=seed))


def synthetic_components(manifest, seed, noise=0.05, leak=0.0):
    """Components of a perfect decoupling of Simulation I (``leak`` mixes y_s into the private parts)."""
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
    parts = {shared_part("m1"): z_s + noise * rng.normal(size=(n, 2)),
             shared_part("m2"): z_s + noise * rng.normal(size=(n, 2)),
             specific("m1"): z_m1, specific("m2"): z_m2,
             per_modality("phi", "m1"): rng.normal(size=(n, 4)), per_modality("phi", "m2"): rng.normal(size=(n, 4)),
             SHARED: z_s, FUSED: np.hstack([z_s, z_m1, z_m2])}
    return {k: np.asarray(v, dtype=np.float32) for k, v in parts.items()}


def tri_dataset(store, n=600, seed=0):
    """A three-modality dataset ``tri`` (text, audio, vision); returns its manifest version."""
    rng = np.random.default_rng(seed)
    split = np.where(np.arange(n) < 0.7 * n, "train", np.where(np.arange(n) < 0.85 * n, "val", "test"))
    table = pd.DataFrame({
        "sample_id": [f"t{i:05d}" for i in range(n)], "split": split, "group": [None] * n,
        "y_s": rng.integers(0, 4, n), "y_text": rng.normal(size=n), "y_audio": rng.integers(0, 3, n),
        "y_vision": rng.gamma(2.0, size=n)})
    table["y_joint"] = np.where(table["y_s"] % 2 == 0, table["y_text"], table["y_vision"])
    labels = (LabelSpec("y_s", "categorical", "shared"), LabelSpec("y_text", "continuous", "text"),
              LabelSpec("y_audio", "categorical", "audio"), LabelSpec("y_vision", "continuous", "vision"),
              LabelSpec("y_joint", "continuous", "joint"))
    modalities = tuple(Modality(m, "features") for m in TRI)
    return store.save_manifest(Manifest("tri", table, labels, modalities, "ordered 70%/15%/rest split"))


def tri_components(manifest, seed, modalities=TRI, noise=0.05, leak=0.3):
    """z_s carries y_s, z_<k> carries the label of modality k (plus ``leak`` × y_s), for ``modalities``."""
    rng = np.random.default_rng(seed)
    table = manifest.table
    n = len(table)
    y_s = table["y_s"].to_numpy()
    bits = np.stack([y_s // 2, y_s % 2], axis=1).astype(np.float64)
    own = {"text": table["y_text"].to_numpy()[:, None], "vision": table["y_vision"].to_numpy()[:, None],
           "audio": np.eye(3)[table["y_audio"].to_numpy()]}
    z_s = bits + noise * rng.normal(size=(n, 2))
    parts = {SHARED: z_s}
    for m in modalities:
        parts[shared_part(m)] = z_s + noise * rng.normal(size=(n, 2))
        parts[specific(m)] = np.hstack([own[m], leak * bits[:, :1]]) + noise * rng.normal(size=(n, own[m].shape[1] + 1))
    parts[FUSED] = np.hstack([parts[SHARED], *(parts[specific(m)] for m in modalities)])
    return {k: np.asarray(v, dtype=np.float32) for k, v in parts.items()}


def _final(component, seed, modalities):
    """The converged rank of a synthetic run: z_s 5 or 6 (by seed), the first modality's 4, others 5."""
    return 5 + seed % 2 if component == SHARED else 4 if component == specific(modalities[0]) else 5


def rank_history(modalities=SIM, epochs=12):
    stages = ["shared"] * 3 + ["private"] * 3 + ["joint"] * (epochs - 6)
    return [{"epoch": e, "stage": st, **{c: max(10 - e, _final(c, 0, modalities))
                                          for c in (SHARED, *map(specific, modalities))}}
            for e, st in enumerate(stages)]


def publish_synthetic(store, version, seed=0, method="multiloreft", ablation=None, settings=None, components=None,
                      valid=None, dataset="sim1", modalities=SIM, **extra_config):
    """Publish a run record built by hand (components default to ``synthetic_components``)."""
    manifest = store.manifest(dataset, version)
    if components is None:
        components = synthetic_components(manifest, seed) if dataset == "sim1" else \
            tri_components(manifest, seed, modalities)
    settings = dict(settings or {})
    inputs = {m: f"{dataset}.{m}.simulated" for m in modalities}
    config = {"rank": 10, **settings, **extra_config}
    ranks = {c: {"initial": 10, "final": _final(c, seed, modalities)} for c in (SHARED, *map(specific, modalities))}
    history = {"rank_history": rank_history(modalities),
               "stage_history": [{"stage": "shared", "start_epoch": 0, "end_epoch": 2},
                                 {"stage": "private", "start_epoch": 3, "end_epoch": 5},
                                 {"stage": "joint", "start_epoch": 6, "end_epoch": 11}]}
    record = RunRecord(
        method=method, dataset=dataset, manifest_version=version, inputs=inputs,
        input_fingerprints={m: f"{i:064d}" for i, m in enumerate(modalities)}, seed=seed, config=config,
        ablation=ablation, settings=settings, dims={m: 10 for m in modalities}, components=list(components),
        started_at="2025-01-01T00:00:00", seconds=1.5, code_version=code_version(), n_params=1234,
        split_protocol=manifest.split_protocol, epochs=12, ranks=ranks, timings={"fit_s": 1.5}, history=history)
    key = {"dataset": dataset, "manifest_version": version, "inputs": inputs, "seed": seed, "ablation": ablation,
           **config}
    valid = np.ones(len(manifest), dtype=bool) if valid is None else valid
    return publish_run(store.runs_dir, method, key, record, components, valid, {"w": torch.zeros(2)})
