"""Δ, the decoupling gap of the MultiLoReFT paper (§5.1, Tables 1–2; DESIGN.md "Evaluation
honesty"), generalised to named modalities. The one definition; the results DB's views express
the same rule in SQL (`evaluate/views.py`) and a test checks that both agree.

For one run (= one seed) with modalities K (the keys of ``RunRecord.inputs``) and a label whose
owner the manifest declares::

    owner = k ∈ K      Δ = score(z_k) − score(z_s)
    owner = shared     Δ = score(z_s) − (1/|K|) Σ_{k∈K} score(z_k)
    owner = joint      no Δ (no component owns the label)

with the component names of `adapters/components.py` (``SHARED`` = z_s, ``specific(k)`` = z_k),
times −1 for a metric where lower is better (`evaluate/metrics.py`), so a larger Δ is always
better: e.g. for MSE, Δ = mse(z_s) − mse(z_m1). There is no Δ when a needed component score is
missing, or when the owner is a modality the run did not use. Δ is computed per seed, then
summarised as mean ± std over seeds (sample std, ddof = 1; undefined for a single seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmpipe.adapters.components import SHARED, shared_part, specific
from mmpipe.evaluate.metrics import metric as metric_of
from mmpipe.store.manifest import OWNERS_BESIDE_MODALITIES

SHARED_OWNER, JOINT_OWNER = OWNERS_BESIDE_MODALITIES  # the owners that are not a modality


def owner_component(owner: str) -> str | None:
    """The component that should carry a label of this owner: z_s for ``shared``, z_k for
    modality k, None for ``joint``."""
    if owner == JOINT_OWNER:
        return None
    return SHARED if owner == SHARED_OWNER else specific(owner)


def decoupling_components(modalities: Sequence[str]) -> tuple[str, ...]:
    """The components Δ compares for a run on these modalities: z_s, then z_k for each k."""
    return (SHARED, *(specific(m) for m in modalities))


def carries(component: str, owner: str, modalities: Sequence[str]) -> bool:
    """Whether ``component`` is one that should carry a label of ``owner`` — False only for a
    decoupled component (z_s, z_s_<k>, z_<k>) of the other side; anything else (fused, h_<k>, ...)
    has no claim either way and counts as carrying it."""
    shared = {SHARED, *(shared_part(m) for m in modalities)}
    own = {specific(m): m for m in modalities}
    if owner == JOINT_OWNER or (component not in shared and component not in own):
        return True
    if owner == SHARED_OWNER:
        return component in shared
    return own.get(component) == owner


def delta(owner: str, metric: str, scores: Mapping[str, float], modalities: Sequence[str]) -> float | None:
    """Δ of one run from its component scores (component name → score of ``metric``).

    ``modalities`` are the run's modalities (``RunRecord.modalities``). None when the owner has
    no Δ (``joint``, or a modality not among ``modalities``) or a needed score is missing; an
    unknown metric raises (the registry lists the valid ones).
    """
    sign = metric_of(metric).sign
    if owner == JOINT_OWNER or SHARED not in scores:
        return None
    if owner == SHARED_OWNER:
        own = [scores.get(specific(m)) for m in modalities]
        if not own or any(v is None for v in own):
            return None
        return sign * (scores[SHARED] - sum(own) / len(own))
    if owner not in modalities or specific(owner) not in scores:
        return None
    return sign * (scores[specific(owner)] - scores[SHARED])


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


def delta_over_seeds(owner: str, metric: str, per_seed: Sequence[Mapping[str, float]],
                     modalities: Sequence[str]) -> MeanStd | None:
    """Δ per seed, then mean ± std; seeds without the needed components are left out."""
    deltas = [d for d in (delta(owner, metric, scores, modalities) for scores in per_seed) if d is not None]
    return mean_std(deltas) if deltas else None
