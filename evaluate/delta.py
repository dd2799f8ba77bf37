"""Δ, the decoupling gap of the MultiLoReFT paper (§5.1, Tables 1–2; DESIGN.md "Evaluation honesty").

For a label owned by a modality-specific component (``m1`` / ``m2``)::

    Δ = score(z_m) − score(z_s)

and for a ``shared`` label::

    Δ = score(z_s) − (score(z_m1) + score(z_m2)) / 2

oriented so that a larger Δ is always better: for an error metric (MSE) the sign is flipped,
e.g. Δ = mse(z_s) − mse(z_m1). Δ is computed per seed (per run), then summarised as mean ± std
over seeds (sample std, ddof = 1; undefined for a single seed). ``joint`` labels have no Δ.

The results DB computes the same quantity in SQL (``store/results.py``, views ``delta_per_run``
and ``delta_summary``); the tests check that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmpipe.store.results import HIGHER_IS_BETTER

COMPONENT_OF_OWNER = {"shared": "z_s", "m1": "z_m1", "m2": "z_m2"}


def higher_is_better(metric: str) -> bool:
    base = metric.split("_")[0] if metric.startswith("accuracy_") else metric
    if base not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(HIGHER_IS_BETTER)}")
    return HIGHER_IS_BETTER[base]


def delta(owner: str, metric: str, scores: Mapping[str, float]) -> float | None:
    """Δ of one seed from its component scores ({"z_s": ..., "z_m1": ..., "z_m2": ...}).

    None when the owner has no Δ (``joint``) or a needed component score is missing.
    """
    if owner not in COMPONENT_OF_OWNER:
        return None
    sign = 1.0 if higher_is_better(metric) else -1.0
    try:
        if owner == "shared":
            return sign * (scores["z_s"] - (scores["z_m1"] + scores["z_m2"]) / 2)
        return sign * (scores[COMPONENT_OF_OWNER[owner]] - scores["z_s"])
    except KeyError:
        return None


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float | None  # None for a single seed
    n: int


def mean_std(values: Sequence[float]) -> MeanStd:
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return MeanStd(mean, std, n)


def delta_over_seeds(owner: str, metric: str, per_seed: Sequence[Mapping[str, float]]) -> MeanStd | None:
    """Δ per seed, then mean ± std; seeds without the needed components are left out."""
    deltas = [d for d in (delta(owner, metric, scores) for scores in per_seed) if d is not None]
    return mean_std(deltas) if deltas else None
