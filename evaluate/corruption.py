"""The stress test's corruption rules: which test rows lose one modality at each rate, and what
the method is given in their place. Pure functions of tensors and seeds (each testable alone).

**Which rows.** The candidates are the run's valid test rows, ``n`` of them, in manifest order. One
permutation π of them is drawn from the seed (`numpy.random.default_rng(seed)`); at rate r the
corrupted rows are its first ``k(r) = ⌊r·n + ½⌋``::

    corrupted(r) = {π_1, …, π_k(r)}

so the choice is the same every time for the same seed and candidates, and nested across rates
(r ≤ r' ⇒ corrupted(r) ⊆ corrupted(r')): a curve over rates only ever removes more. Rates lie in
[0, 1) — at r = 1 nothing of the modality is left to compare with — and are given increasing.

**What replaces them** (modality m, corrupted row i; sequences (T, D) with L_i valid steps, the
padding past L_i stays zero and L_i is unchanged, so the method sees a row of the same length):

- ``zero``: x_i ← 0 (for a sequence, every valid step: t < L_i);
- ``mean``: x_i ← μ_m, the train split's mean of m per feature — over the train rows for pooled
  inputs, over the valid steps of the train rows for sequences (μ = Σ_i Σ_{t<L_i} x_{i,t} / Σ_i L_i),
  written at every valid step;
- ``noise``: x_i ← x_i + ε_i, ε_i ~ N(0, S² I) at every valid step, in the feature's own units.
  Noise is *added*: the survey pairs missing with *corrupted* modalities, and a corrupted input
  still carries its signal under the noise (as MultiBench's robustness test adds Gaussian noise to
  the features); replacing the row with noise would be a fourth kind of missing. ε is drawn once
  per stress from the seed, for the rows in π order (``numpy`` fills draws in order, so row π_j
  gets the same ε at every rate and every maximum rate);
- ``drop``: the method's own missing-input rule (`HandlesMissing`): it is told which rows lack
  the modality and decides what to compute without it. No registered method has one yet (none
  defines ``transform_missing``), so ``drop`` is refused for each of them; the other fills apply
  to every method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mmpipe.store.errors import UserError

FILLS = ("zero", "mean", "noise")  # the modes that write values in place of the modality; ``drop`` writes none
NOISE_STREAM = 1  # the noise generator's seed is (seed, NOISE_STREAM): independent of the row choice
MAX_RATES = 100


@runtime_checkable
class HandlesMissing(Protocol):
    """A method with its own rule for an absent modality (``--mode drop``): ``missing`` maps a
    modality to the (N,) bool rows that lack it; those rows of ``inputs`` hold zeros, so a rule
    that reads them anyway gains nothing. Returns the components, as ``transform`` does."""

    def transform_missing(self, inputs: Mapping[str, torch.Tensor], lengths: Mapping[str, torch.Tensor] | None,
                          missing: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


def check_rates(rates: Sequence[float]) -> tuple[float, ...]:
    """Rates as given, refused (one line) unless each is in [0, 1) and they strictly increase."""
    if not rates:
        raise UserError("--rates must list at least one rate, e.g. 0,0.2,0.4,0.6")
    if len(rates) > MAX_RATES:
        raise UserError(f"--rates lists {len(rates)} rates; at most {MAX_RATES}")
    bad = next((r for r in rates if not (math.isfinite(r) and 0 <= r < 1)), None)
    if bad is not None:
        raise UserError(f"--rates {bad}: a rate is a fraction of the test rows in [0, 1)")
    if any(b <= a for a, b in zip(rates, rates[1:], strict=False)):
        raise UserError(f"--rates must strictly increase, not {','.join(f'{r:g}' for r in rates)}")
    return tuple(float(r) for r in rates)


def corrupted_count(rate: float, n: int) -> int:
    """k(r) = ⌊r·n + ½⌋ rows of n."""
    return math.floor(rate * n + 0.5)


def row_order(candidates: np.ndarray, seed: int) -> np.ndarray:
    """π: the candidate row indices (n,) in the seeded order rows are corrupted in; the rows
    corrupted at rate r are ``row_order(...)[:corrupted_count(r, n)]``."""
    return np.random.default_rng(seed).permutation(np.asarray(candidates))


def step_mask(values: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Where a row's values are: (N, D) → all True (N, 1); (N, T, D) → (N, T, 1), t < L_i."""
    if lengths is None:
        return torch.ones(values.shape[0], 1, dtype=torch.bool, device=values.device)
    steps = torch.arange(values.shape[1], device=values.device)
    return (steps[None, :] < lengths[:, None].to(values.device))[:, :, None]


def train_mean(values: torch.Tensor, lengths: torch.Tensor | None, train_rows: torch.Tensor) -> torch.Tensor:
    """μ (D,): the per-feature mean of the train rows (pooled), or of their valid steps (sequences)."""
    x = values[train_rows].double()
    if lengths is None:
        return x.mean(0).to(values.dtype)
    mask = step_mask(x, lengths[train_rows]).double()  # (n, T, 1)
    return ((x * mask).sum((0, 1)) / mask.sum().clamp_min(1)).to(values.dtype)


def zero_fill(values: torch.Tensor) -> torch.Tensor:
    """Every value of the given rows set to 0, (N, D) or (N, T, D): a sequence's valid steps, and
    its padding, which is zero already."""
    return torch.zeros_like(values)


def mean_fill(values: torch.Tensor, lengths: torch.Tensor | None, mean: torch.Tensor) -> torch.Tensor:
    """Every valid step of the given rows set to ``mean`` (D,); padding stays zero."""
    return torch.where(step_mask(values, lengths), mean.to(values.dtype), torch.zeros((), dtype=values.dtype))


def noise_draw(shape: tuple[int, ...], std: float, seed: int) -> torch.Tensor:
    """ε (n, …) ~ N(0, std²), float32, drawn in row order from the seed's noise stream."""
    rng = np.random.default_rng((seed, NOISE_STREAM))
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * np.float32(std))


def add_noise(values: torch.Tensor, lengths: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
    """x + ε at every valid step of the given rows; padding stays zero. ``noise`` has values' shape."""
    return values + noise.to(values.dtype) * step_mask(values, lengths)


def fill(mode: str, values: torch.Tensor, lengths: torch.Tensor | None, mean: torch.Tensor | None = None,
         noise: torch.Tensor | None = None) -> torch.Tensor:
    """The given rows of one modality, (n, D) or (n, T, D) with lengths (n,), as ``mode`` fills
    them: ``mean`` needs the train mean (D,), ``noise`` the rows' ε (values' shape)."""
    if mode == "zero":
        return zero_fill(values)
    if mode == "mean":
        assert mean is not None
        return mean_fill(values, lengths, mean)
    if mode == "noise":
        assert noise is not None
        return add_noise(values, lengths, noise)
    raise ValueError(f"{mode!r} is not a fill; valid: {', '.join(FILLS)}")


def corruption_name(row: Mapping[str, Any]) -> str:
    """A stress row's corruption in a few words: ``zero``, ``mean``, ``drop`` or ``noise σ=S``,
    with the corruption seed (``row``: mode, noise_std, corruption_seed)."""
    mode = row["mode"] if row["noise_std"] is None else f"{row['mode']} σ={row['noise_std']:g}"
    return f"{mode}, seed {row['corruption_seed']}"


def describe(mode: str, modality: str, noise_std: float | None, seed: int) -> str:
    """The stress protocol in words (the rate is a column of its own)."""
    what = {"zero": f"{modality} replaced by zeros",
            "mean": f"{modality} replaced by its train-split mean",
            "noise": f"{modality} plus Gaussian noise N(0, {noise_std:g}²)" if noise_std is not None else "",
            "drop": f"{modality} absent (the method's own missing-input rule)"}[mode]
    return (f"stress: {what} in a fraction `rate` of the valid test rows (⌊rate·n + ½⌋ of n, a seeded choice, "
            f"seed {seed}, nested across rates); test rows and labels the same at every rate; probes fitted "
            "on the clean train split, selected on clean val, not refitted")
