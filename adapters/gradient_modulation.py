"""On-the-fly gradient modulation (OGM) and OGM with Gaussian enhancement (OGM-GE): Peng, Wei, Deng,
Wang & Hu, "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022, §3.2–3.3;
the survey's adaptive gradient modulation against modality competition (arXiv 2506.20494, Eq. 6:
time-varying per-modality weights on the gradients; its "Mechanism 2").

At every training step t, from the minibatch B and each modality u's own contribution ŷ_u to the
prediction (the paper's W_u φ_u + b/2 of a concatenation head; a late fusion's unimodal head)::

    s_u = Σ_{i∈B} exp(−ℓ(ŷ_u,i, y_i))                  the modality's score on the batch
          categorical: softmax(ŷ_u,i)[y_i]             (the paper's: the true class's softmax score)
          continuous:  exp(−½ (ŷ_u,i − y_i)²)          (ours: the true value's Gaussian likelihood,
                                                        unit variance on the standardised label,
                                                        relative to its peak; see below)
    ρ_u = s_u / mean_{v≠u} s_v                         discrepancy ratio (two modalities: s_a / s_v)
    k_u = 1 − tanh(α · ρ_u)   if ρ_u > 1,   else 1      Eq. 10
    g(θ_u) ← k_u · g(θ_u)                              every parameter θ_u of modality u's encoder
    GE:  g(θ_u) ← k_u · g(θ_u) + h,   h ~ N(0, σ² I)   σ = the standard deviation of k_u · g(θ_u)
                                                        over the parameter's elements, every
                                                        modality's encoder (§3.3)

Only the encoders are modulated: heads and fusion layers keep their gradients (as in the paper,
whose fusion layer is never scaled). The paper trains with SGD, where k scales the step; under the
baselines' AdamW, whose update m̂/√v̂ is unchanged when every gradient of a parameter is scaled by
the same factor, a k that stays constant is divided out, and only its changes from step to step
(and GE's noise) reach the weights.

Choices where the paper is silent or differs from its code, each written here once:

- Eq. 10 as published and as the authors' code computes it (``1 - tanh(alpha * relu(ratio))`` for
  ratio > 1): k jumps from 1 to 1 − tanh(α) as ρ crosses 1. The variant 1 − tanh(α·(ρ − 1)),
  continuous at ρ = 1, is not the paper's rule and is not offered.
- The score is exp(−per-row loss) in both cases: for cross-entropy that *is* the true class's
  softmax score; for a continuous label (the paper has none) it is the same quantity for the
  Gaussian likelihood whose negative log the squared error is, so both lie in (0, 1] and a better
  prediction scores higher. A negative error would make the ratio meaningless (signs cancel).
- More than two modalities (the paper has two): ρ_u compares s_u with the mean score of the other
  modalities, which is the paper's ratio for two; every modality with ρ_u > 1 is scaled.
- σ of GE is the population standard deviation of the scaled gradient (the code's ``grad.std()``
  up to the n/(n − 1) factor; defined for one-element parameters too); the noise comes from its
  own generator seeded by the fit's seed, so a modulated fit is reproducible and the minibatch
  order is the same as without modulation.
- The paper's optional modulation window (``modulation_starts`` / ``modulation_ends`` epochs in
  the code) is not offered: modulation runs for the whole fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Modulation = Literal["none", "ogm", "ogm-ge"]


def modality_scores(contributions: Mapping[str, torch.Tensor], y: torch.Tensor, kind: str) -> dict[str, float]:
    """s_u for each modality: contributions[u] (B, n_outputs) against y (B,) (class codes, or the
    standardised continuous label)."""
    scores = {}
    for modality, prediction in contributions.items():
        if kind == "categorical":
            per_row = F.softmax(prediction, dim=1).gather(1, y[:, None]).squeeze(1)  # (B,)
        else:
            per_row = torch.exp(-0.5 * (prediction.squeeze(1) - y) ** 2)  # (B,)
        scores[modality] = float(per_row.sum())
    return scores


def discrepancy_ratios(scores: Mapping[str, float]) -> dict[str, float]:
    """ρ_u = s_u / mean of the other modalities' scores."""
    ratios = {}
    for modality, score in scores.items():
        others = [s for m, s in scores.items() if m != modality]
        ratios[modality] = score / (sum(others) / len(others))
    return ratios


def coefficient(ratio: float, alpha: float) -> float:
    """Eq. 10: k = 1 − tanh(α·ρ) for a dominant modality (ρ > 1), else 1."""
    return 1.0 - math.tanh(alpha * ratio) if ratio > 1 else 1.0


def coefficients(scores: Mapping[str, float], alpha: float) -> dict[str, float]:
    """k_u for each modality from its score s_u."""
    return {m: coefficient(r, alpha) for m, r in discrepancy_ratios(scores).items()}


def gaussian_enhancement(scaled: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """GE: the scaled gradient plus h ~ N(0, σ²) with σ its own standard deviation."""
    noise = torch.randn(scaled.shape, generator=generator, device=scaled.device, dtype=scaled.dtype)
    return scaled + noise * scaled.std(correction=0)


@dataclass(frozen=True)
class ModulationSummary:
    """What a modulated fit did, for its run record: per modality, the share of steps at which it
    dominated (ρ_u > 1, whatever α) and its mean coefficient over all steps."""

    rule: str
    alpha: float
    steps: int
    dominant_share: dict[str, float]
    mean_coefficient: dict[str, float]


class GradientModulation:
    """Scales each modality encoder's gradients by the coefficients of the current step, through
    gradient hooks on the encoder parameters (registered for the duration of ``hooks()``).

    Per step: ``update(contributions, y)`` before ``loss.backward()``; the hooks then apply the
    coefficients as the gradients are computed."""

    def __init__(self, encoders: Mapping[str, nn.Module], rule: Modulation, alpha: float, kind: str,
                 generator: torch.Generator) -> None:
        self.encoders = dict(encoders)
        self.rule = rule
        self.alpha = alpha
        self.kind = kind
        self.generator = generator
        self.current = dict.fromkeys(self.encoders, 1.0)
        self.steps = 0
        self.dominant_steps = dict.fromkeys(self.encoders, 0)
        self.coefficient_sums = dict.fromkeys(self.encoders, 0.0)

    def update(self, contributions: Mapping[str, torch.Tensor], y: torch.Tensor) -> dict[str, float]:
        """Set this step's k_u from the modalities' contributions (B, n_outputs) on the batch."""
        ratios = discrepancy_ratios(modality_scores(contributions, y, self.kind))
        self.current = {m: coefficient(r, self.alpha) for m, r in ratios.items()}
        self.steps += 1
        for modality, ratio in ratios.items():
            self.dominant_steps[modality] += ratio > 1
            self.coefficient_sums[modality] += self.current[modality]
        return dict(self.current)

    def modulate(self, grad: torch.Tensor, modality: str) -> torch.Tensor:
        """One parameter's gradient of ``modality``'s encoder: k_u · g (+ h under GE)."""
        scaled = grad * self.current[modality]
        return gaussian_enhancement(scaled, self.generator) if self.rule == "ogm-ge" else scaled

    @contextmanager
    def hooks(self) -> Iterator[None]:
        handles = [p.register_hook(lambda grad, m=modality: self.modulate(grad, m))
                   for modality, encoder in self.encoders.items() for p in encoder.parameters()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def summary(self) -> ModulationSummary:
        steps = max(self.steps, 1)
        return ModulationSummary(self.rule, self.alpha, self.steps,
                                 {m: n / steps for m, n in self.dominant_steps.items()},
                                 {m: s / steps for m, s in self.coefficient_sums.items()})
