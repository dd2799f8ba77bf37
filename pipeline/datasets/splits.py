"""Seeded train/val/test assignment."""

from __future__ import annotations

import numpy as np

from mmpipe.store.errors import UserError


def check_fractions(train: float, val: float) -> None:
    if not (0 < train < 1 and 0 <= val < 1 and train + val < 1):
        raise UserError(f"split fractions must satisfy 0 < train, 0 <= val, train + val < 1 (got {train}, {val})")


def random_split(n: int, train: float, val: float, seed: int) -> np.ndarray:
    """An array of "train"/"val"/"test" of length n; exact counts round(n·train), round(n·val)."""
    check_fractions(train, val)
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = round(n * train), round(n * val)
    split = np.empty(n, dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train:n_train + n_val]] = "val"
    split[order[n_train + n_val:]] = "test"
    return split
