"""Multiplicative interactions (Jayakumar et al., "Multiplicative Interactions and Where to Find
Them", ICLR 2020), the MultiLoReFT paper's "MI" fusion baseline (§4.1). **Supervised** on the
target of `adapters/targets.py` (default: the dataset's joint label).

The multiplicative-interaction layer on the two (projected) modalities x = P_1 h_1 ∈ R^{p1},
y = P_2 h_2 ∈ R^{p2}, with a 3-tensor W ∈ R^{D × p1 × p2}::

    fused_k = xᵀ W_k y + (U x)_k + (V y)_k + b_k,     ŷ = A fused + c

It contains concatenation (W = 0) and the bilinear form (U = V = 0, b = 0) as special cases. The
linear projections P_i (to p_i = r_s + r_mi, modality i's MultiLoReFT width) keep W small for
high-dimensional encoders; D = r_s + r_m1 + r_m2 (adapters/sizes.py). Components: fused.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.base import Dims
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import Inputs, SupervisedConfig, SupervisedFusion


class MultiplicativeInteraction(nn.Module):
    """f(x, y) = xᵀ W y + U x + V y + b for x (B, p1), y (B, p2) → (B, D)."""

    def __init__(self, p1: int, p2: int, out: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(out, p1, p2) / math.sqrt(p1 * p2))  # (D, p1, p2)
        self.U = nn.Linear(p1, out, bias=False)
        self.V = nn.Linear(p2, out, bias=False)
        self.b = nn.Parameter(torch.zeros(out))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        bilinear = torch.einsum("bi,kij,bj->bk", x, self.W, y)  # (B, D)
        return bilinear + self.U(x) + self.V(y) + self.b


@METHODS.register("mult-interactions")
class MultInteractions(SupervisedFusion):
    name = "mult-interactions"
    description = "Multiplicative interactions (Jayakumar et al. 2020): xᵀWy + Ux + Vy + b fusion (supervised)"
    Config = SupervisedConfig
    modality_count = (2, 2)

    def __init__(self, config: SupervisedConfig, dims: Dims, n_outputs: int = 1) -> None:
        super().__init__(dims, n_outputs)
        r_s, r_m1, r_m2 = check_sizes(config, dims)
        d1, d2 = dims.values()
        self.config = config
        self.proj1, self.proj2 = nn.Linear(d1, r_s + r_m1), nn.Linear(d2, r_s + r_m2)
        self.interaction = MultiplicativeInteraction(r_s + r_m1, r_s + r_m2, r_s + r_m1 + r_m2)
        self.head = nn.Linear(r_s + r_m1 + r_m2, n_outputs)

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return (components.FUSED,)

    def interact(self, inputs: Inputs) -> torch.Tensor:  # (B, D)
        first, second = self.modalities
        return self.interaction(self.proj1(inputs[first]), self.proj2(inputs[second]))

    def predict(self, inputs: Inputs) -> torch.Tensor:
        return self.head(self.interact(inputs))

    def fuse(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        return {components.FUSED: self.interact(inputs)}
