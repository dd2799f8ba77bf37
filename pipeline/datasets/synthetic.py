"""Pieces Simulation I and II share: random linear observation maps and the manifest table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.splits import check_fractions, random_split, split_counts
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import check_split_rows


def check_simulation(name: str, n: int, train: float, val: float, w_low: float, w_high: float) -> None:
    """What a simulation config's fields must satisfy together (each field's own range is declared
    beside it): fractions that leave test rows, every split at least `MIN_SPLIT_ROWS` rows, and
    w_low <= w_high."""
    check_fractions(train, val)
    check_split_rows(split_counts(n, train, val), name,
                     "raise n (or the fraction of the smallest split)")
    if w_low > w_high:
        raise UserError(f"{name}: w_low must be <= w_high, not {w_low:g} > {w_high:g}")


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
