"""Attention-based fusion, the MultiLoReFT paper's cross-attention baseline (§4.1: "projects each
modality into a common space and applies a lightweight self-attention layer to let the two
embeddings interact before pooling into a fused representation"). **Supervised** on the target of
`adapters/targets.py` (default: the dataset's joint label). Takes two or more modalities, one
token each.

    t_k   = P_k h_k + e_k ∈ R^D                    (linear projection + a learned modality embedding)
    [u_1, ..., u_K] = TransformerLayer([t_1, ..., t_K])   one post-norm self-attention layer over
                                                   the K tokens (``heads`` heads, feed-forward
                                                   width ``hidden``)
    fused = mean_k u_k,   ŷ = W fused + b

D = r_s + Σ_k r_k, the width of MultiLoReFT's fused representation (adapters/sizes.py).
Components: u_<k> (the attended tokens) and fused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.base import Dims
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import Inputs, SupervisedConfig, SupervisedFusion
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import between


@dataclass(frozen=True)
class CrossAttentionConfig(SupervisedConfig):
    heads: Annotated[int, between(1, 64)] = 1  # must divide the width D


@METHODS.register("cross-attention")
class CrossAttention(SupervisedFusion):
    name = "cross-attention"
    description = "Attention fusion: common-space projections, one self-attention layer, mean pool (supervised)"
    Config = CrossAttentionConfig
    modality_count = (2, None)

    def __init__(self, config: CrossAttentionConfig, dims: Dims, n_outputs: int = 1) -> None:
        super().__init__(dims, n_outputs)
        width = sum(check_sizes(config, dims))
        if width % config.heads:
            raise UserError(f"cross-attention: heads={config.heads} must divide the width D = {width} (the sum of "
                            f"the sizes); choose heads among {', '.join(str(h) for h in range(1, 65) if width % h == 0)}")
        self.config = config
        self.projections = nn.ModuleDict({k: nn.Linear(d, width) for k, d in dims.items()})
        self.modality = nn.Parameter(0.02 * torch.randn(len(dims), width))  # (K, D)
        self.layer = nn.TransformerEncoderLayer(width, config.heads, dim_feedforward=config.hidden, dropout=0.0,
                                                batch_first=True)
        self.head = nn.Linear(width, n_outputs)

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return (*(components.per_modality("u", k) for k in modalities), components.FUSED)

    def tokens(self, inputs: Inputs) -> torch.Tensor:
        t = torch.stack([self.projections[k](inputs[k]) for k in self.modalities], 1) + self.modality  # (B, K, D)
        return self.layer(t)  # (B, K, D)

    def predict(self, inputs: Inputs) -> torch.Tensor:
        return self.head(self.tokens(inputs).mean(1))

    def fuse(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        u = self.tokens(inputs)  # (N, K, D)
        return {**{components.per_modality("u", k): u[:, i] for i, k in enumerate(self.modalities)},
                components.FUSED: u.mean(1)}
