"""Seeded train/val/test assignment: plain random, group-disjoint, and stratified random."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmpipe.store.errors import UserError


def check_fractions(train: float, val: float) -> None:
    if not (0 < train < 1 and 0 <= val < 1 and train + val < 1):
        raise UserError(f"split fractions must satisfy 0 < train, 0 <= val, train + val < 1 (got {train}, {val})")


def split_counts(n: int, train: float, val: float) -> dict[str, int]:
    """Rows per split of `random_split` over n rows: round(n·train), round(n·val), the rest."""
    n_train, n_val = round(n * train), round(n * val)
    return {"train": n_train, "val": n_val, "test": n - n_train - n_val}


def random_split(n: int, train: float, val: float, seed: int) -> np.ndarray:
    """An array of "train"/"val"/"test" of length n; exact counts round(n·train), round(n·val)."""
    check_fractions(train, val)
    order = np.random.default_rng(seed).permutation(n)
    counts = split_counts(n, train, val)
    n_train, n_val = counts["train"], counts["val"]
    split = np.empty(n, dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train:n_train + n_val]] = "val"
    split[order[n_train + n_val:]] = "test"
    return split


def _split_counts(n: int, train: float, val: float, unit: str) -> tuple[int, int]:
    """(n_train, n_val) out of n units, with at least one unit in train, in test and (if val > 0) in val."""
    needed = 3 if val > 0 else 2
    if n < needed:
        raise UserError(f"a train/val/test split needs at least {needed} {unit}s (got {n})")
    n_train, n_val = max(1, round(n * train)), round(n * val)
    if val > 0:
        n_val = max(1, n_val)
    while n_train + n_val > n - 1:  # keep at least one unit for test
        if n_train >= n_val and n_train > 1:
            n_train -= 1
        else:
            n_val -= 1
    return n_train, n_val


def group_split(groups: np.ndarray | list, train: float, val: float, seed: int) -> np.ndarray:
    """Group-disjoint seeded split: every row of a group lands in the same split.

    The distinct groups are sorted (so the result does not depend on row order), permuted with
    ``seed``, and the first round(G·train) go to train, the next round(G·val) to val, the rest to
    test (each split keeps at least one group). Fractions count groups, not rows: with groups of
    similar size, as CREMA-D's actors (76-82 clips each), the row fractions follow closely.
    """
    check_fractions(train, val)
    groups = np.asarray(groups, dtype=object)
    if pd.isna(groups).any():
        raise UserError("group_split: every row needs a group (found missing values)")
    unique = np.array(sorted(set(groups.tolist())), dtype=object)
    n_train, n_val = _split_counts(len(unique), train, val, "group")
    order = np.random.default_rng(seed).permutation(len(unique))
    assigned = np.empty(len(unique), dtype=object)
    assigned[order[:n_train]] = "train"
    assigned[order[n_train:n_train + n_val]] = "val"
    assigned[order[n_train + n_val:]] = "test"
    lookup = dict(zip(unique.tolist(), assigned.tolist(), strict=True))
    return np.array([lookup[g] for g in groups.tolist()], dtype=object)


def stratified_split(strata: np.ndarray | list, train: float, val: float, seed: int) -> np.ndarray:
    """Seeded random split that keeps each stratum's class proportions in every split.

    Within each stratum (visited in sorted order, one generator seeded with ``seed``) the rows are
    permuted and round(n_c·train) go to train, round(n_c·val) to val, the rest to test — so each
    split's class mix matches the whole up to rounding. Groups are ignored: use
    :func:`group_split` when rows of one group must not span splits.
    """
    check_fractions(train, val)
    strata = np.asarray(strata, dtype=object)
    if pd.isna(strata).any():
        raise UserError("stratified_split: every row needs a stratum value (found missing values)")
    rng = np.random.default_rng(seed)
    split = np.empty(len(strata), dtype=object)
    for value in sorted(set(strata.tolist())):
        rows = np.flatnonzero(strata == value)
        rows = rows[rng.permutation(len(rows))]
        n_train, n_val = round(len(rows) * train), round(len(rows) * val)
        split[rows[:n_train]] = "train"
        split[rows[n_train:n_train + n_val]] = "val"
        split[rows[n_train + n_val:]] = "test"
    return split


def fraction_label(train: float, val: float) -> str:
    """'70/15/15' for the split protocol strings."""
    test = 1.0 - train - val
    return "/".join(f"{100 * f:.0f}" for f in (train, val, test))
