"""Attention-based fusion, the MultiLoReFT paper's cross-attention baseline (§4.1: "projects each
modality into a common space and applies a lightweight self-attention layer to let the two
embeddings interact before pooling into a fused representation"). **Supervised** on the target of
`adapters/targets.py` (default: the dataset's joint label).

    t_i   = P_i h_i + e_i ∈ R^D                    (linear projection + a learned modality embedding)
    [u_1, u_2] = TransformerLayer([t_1, t_2])      one post-norm self-attention layer over the two
                                                   tokens (1 head, feed-forward width ``hidden``)
    fused = (u_1 + u_2) / 2,   ŷ = W fused + b

D = r_s + r_m1 + r_m2, the width of MultiLoReFT's fused representation (adapters/sizes.py).
Components: u1, u2 (the attended tokens) and fused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import SupervisedConfig, SupervisedFusion


@dataclass(frozen=True)
class CrossAttentionConfig(SupervisedConfig):
    heads: int = 1


@METHODS.register("cross-attention")
class CrossAttention(SupervisedFusion):
    name = "cross-attention"
    description = "Attention fusion: common-space projections, one self-attention layer, mean pool (supervised)"
    Config = CrossAttentionConfig
    component_names = ("u1", "u2", "fused")

    def __init__(self, config: CrossAttentionConfig, dims: tuple[int, int], n_outputs: int = 1) -> None:
        super().__init__(dims, n_outputs)
        width = sum(check_sizes(config, dims))
        self.config = config
        self.proj1, self.proj2 = nn.Linear(dims[0], width), nn.Linear(dims[1], width)
        self.modality = nn.Parameter(0.02 * torch.randn(2, width))  # (2, D)
        self.layer = nn.TransformerEncoderLayer(width, config.heads, dim_feedforward=config.hidden, dropout=0.0,
                                                batch_first=True)
        self.head = nn.Linear(width, n_outputs)

    def tokens(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        t = torch.stack([self.proj1(h1), self.proj2(h2)], 1) + self.modality  # (B, 2, D)
        return self.layer(t)  # (B, 2, D)

    def predict(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        return self.head(self.tokens(h1, h2).mean(1))

    @torch.no_grad()
    def transform(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        self.eval()
        u = self.tokens(*self.standardized(h1, h2))  # (N, 2, D)
        return {"u1": u[:, 0], "u2": u[:, 1], "fused": u.mean(1)}
