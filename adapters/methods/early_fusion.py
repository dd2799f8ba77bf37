"""Early fusion, the survey's first fusion strategy (Multimodal representation learning and fusion,
arXiv 2506.20494, Eq. 4, p. 3: the modalities' features are combined at the input and one model
learns from the combination — "captures low-level interactions but is computationally heavy and
sensitive to noise"; its "Architecture Onboarding → Design tradeoffs").
The baseline beside late fusion (`late_fusion.py`, each modality modelled alone and only the
results combined) and the intermediate fusions (cross-attention, multiplicative interactions).
**Supervised** on the target of `adapters/targets.py` (default: the dataset's joint label). Takes
two or more modalities.

The standardised inputs (train mean and std per modality) are concatenated and one MLP maps them
to the target::

    x = [x_1, ..., x_K] ∈ R^{D_1 + ... + D_K}
    fused = f(x) = W_2 GELU(W_1 x + b_1) + b_2 ∈ R^D,   ŷ = W fused + b,   L = loss(ŷ, y)

the same MLP and head as one modality of late fusion, on the concatenation. D = r_s + Σ_k r_k, the
width of MultiLoReFT's fused representation (adapters/sizes.py), as cross-attention's. Sequence
features are pooled by the fit's pooling (`mmpipe fit --pooling`, mean by default) before they are
concatenated, as for every method that takes pooled rows. Components: fused (the MLP's last hidden
layer, before the head). There is no per-modality component: after the first layer no part of the
representation belongs to one modality, and for the same reason no part of the prediction does, so
gradient modulation (`adapters/gradient_modulation.py`), which needs each modality's own
contribution to the prediction, is refused.
"""

from __future__ import annotations

import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.base import Dims
from mmpipe.adapters.baseline import mlp
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import Inputs, SupervisedConfig, SupervisedFusion


@METHODS.register("early-fusion")
class EarlyFusion(SupervisedFusion):
    name = "early-fusion"
    description = "Early fusion: the standardised inputs concatenated, one MLP to the target (supervised)"
    Config = SupervisedConfig
    modality_count = (2, None)

    def __init__(self, config: SupervisedConfig, dims: Dims, n_outputs: int = 1) -> None:
        super().__init__(dims, n_outputs)
        width = sum(check_sizes(config, dims))
        self.config = config
        self.encoder = mlp(sum(dims.values()), config.hidden, width)
        self.head = nn.Linear(width, n_outputs)

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return (components.FUSED,)

    def encode(self, inputs: Inputs) -> torch.Tensor:  # (B, D)
        return self.encoder(torch.cat([inputs[k] for k in self.modalities], 1))  # from (B, D_1 + ... + D_K)

    def predict(self, inputs: Inputs) -> torch.Tensor:
        return self.head(self.encode(inputs))

    def fuse(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        return {components.FUSED: self.encode(inputs)}
