"""Bounding a sequence's length: the mean over equal windows.

A sequence h of L valid steps becomes S = min(L, max_steps) steps; with L > max_steps, step j is
the mean of its window of the valid steps,

    out_j = mean(h_t for t in [floor(j·L/S), floor((j+1)·L/S))),   j = 0..S-1,

so the windows tile the L steps, each holds ⌊L/S⌋ or ⌈L/S⌉ of them, and no padding step enters
any. A sequence of at most ``max_steps`` steps is kept as it is. Each row is computed alone, so
the result does not depend on what else is in the batch.
"""

from __future__ import annotations

import torch


def window_bounds(length: int, max_steps: int) -> list[tuple[int, int]]:
    """The [start, stop) window of each output step of a sequence of ``length`` valid steps."""
    if length <= max_steps:
        return [(t, t + 1) for t in range(length)]
    return [(j * length // max_steps, (j + 1) * length // max_steps) for j in range(max_steps)]


def window_mean(sequence: torch.Tensor, steps: torch.Tensor, max_steps: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) sequences with (B,) valid steps -> (B, min(T, max_steps), D) in float32 and the new
    valid steps; steps past a row's new length are zero. ``max_steps=None`` keeps every step."""
    valid = torch.arange(sequence.shape[1], device=sequence.device)[None, :] < steps[:, None]  # (B, T)
    values = torch.where(valid[..., None], sequence.float(), 0.0)  # (B, T, D): padding outputs never enter
    if max_steps is None or values.shape[1] <= max_steps:
        return values, steps
    weights = values.new_zeros(len(values), max_steps, values.shape[1])  # (B, S, T): each row's window averages
    for row, length in enumerate(steps.tolist()):
        for j, (start, stop) in enumerate(window_bounds(int(length), max_steps)):
            weights[row, j, start:stop] = 1.0 / (stop - start)
    return torch.bmm(weights, values), steps.clamp(max=max_steps)  # (B, S, D)
