"""Pieces Simulation I and II share: random linear observation maps and the manifest table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.splits import random_split


def uniform_projection(latents: np.ndarray, dim: int, low: float, high: float,
                       rng: np.random.Generator) -> np.ndarray:
    """h = latents · W with W ~ U(low, high) of shape (n_latents, dim) (Appendix A.1: "sampled from
    a uniform distribution"). Returns float32 (n, dim)."""
    weights = rng.uniform(low, high, size=(latents.shape[1], dim))
    return (latents @ weights).astype(np.float32)


def simulation_table(prefix: str, labels: dict[str, np.ndarray], train: float, val: float,
                     seed: int) -> pd.DataFrame:
    n = len(next(iter(labels.values())))
    table = pd.DataFrame({
        "sample_id": [f"{prefix}-{i:06d}" for i in range(n)],
        "split": random_split(n, train, val, seed),
        "group": pd.Series([None] * n, dtype="object"),
    })
    for name, values in labels.items():
        table[name] = values
    table["split"] = table["split"].astype(str)
    return table
