"""Pooling of stored sequences to one vector per row, so every pooled-input method also runs on
sequence entries. Pure tensor functions (each testable alone).

A sequence entry holds ``values (N, T, D)``, dense and padded at the end, and ``lengths (N,)``:
row i has valid steps ``t < L_i`` (see mmpipe/store/features.py). For a row with ``L_i ≥ 1``:

    mean:  p_i = (1 / L_i) · Σ_{t < L_i} x_{i,t}
    last:  p_i = x_{i, L_i − 1}

A row with ``L_i = 0`` has no step and therefore no features: ``pool`` refuses it instead of
inventing a value. Mask such rows as invalid first (``valid_rows``), then either pool only the
kept rows, ``pool(values[keep], lengths[keep], how)``, or, to avoid copying ``values``, pool
``lengths.clamp_min(1)`` and let the mask say those rows are missing (the store's padding is
zero, so they pool to zero).
"""

from __future__ import annotations

from typing import Literal

import torch

POOLINGS = ("mean", "last")


def valid_rows(lengths: torch.Tensor) -> torch.Tensor:
    """Rows that have at least one step: ``L_i > 0``. (N,) → (N,) bool."""
    return lengths > 0


def pool(values: torch.Tensor, lengths: torch.Tensor, how: Literal["mean", "last"]) -> torch.Tensor:
    """Pool each row's valid steps: (N, T, D) values, (N,) lengths → (N, D), in ``values.dtype``.

    Steps at or beyond a row's length are ignored, provided they are finite (the store writes
    zeros there): "mean" weights them by zero rather than copying ``values`` to mask them.
    Raises ValueError for a length outside 1..T, naming how many rows have length 0.
    """
    if how not in POOLINGS:
        raise ValueError(f"how must be one of {POOLINGS}, not {how!r}")
    if values.ndim != 3:
        raise ValueError(f"values must be (N, T, D), got shape {tuple(values.shape)}")
    n, steps, _ = values.shape
    if lengths.shape != (n,):
        raise ValueError(f"lengths must have shape ({n},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got {lengths.dtype}")
    lengths = lengths.to(values.device, torch.int64)  # (N,)
    empty = int((lengths == 0).sum())
    if empty:
        raise ValueError(f"pool({how!r}): {empty} of {n} rows have length 0 (no steps, so no features); "
                         f"mask them as invalid first (valid_rows(lengths)) and pool only the valid rows")
    if bool(((lengths < 0) | (lengths > steps)).any()):
        raise ValueError(f"pool({how!r}): lengths must lie in 1..{steps} (the sequence dim T)")
    if how == "last":
        return values[torch.arange(n, device=values.device), lengths - 1]  # (N, D)
    weights = (torch.arange(steps, device=values.device)[None, :] < lengths[:, None]).to(values.dtype)  # (N, T)
    total = torch.bmm(weights[:, None, :], values).squeeze(1)  # (N, 1, T) @ (N, T, D) → (N, D)
    return total / lengths[:, None].to(values.dtype)  # (N, D)
