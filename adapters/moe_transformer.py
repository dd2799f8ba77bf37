"""A sequence encoder of post-norm transformer layers whose feed-forward block is a mixture of
experts (`adapters/moe.py`): S3's per-modality encoder (the S3 paper §4, §6; MultiBench's
``Transformer`` backbone, which S3 says it follows, with the FFN replaced by the MoE).

For rows x (B, T, D_in) with valid lengths L (B,) (steps t ≥ L_b are padding)::

    h⁰      = x W_in                                   bias-free input projection D_in → d
                                                       (MultiBench: a kernel-1 Conv1d without bias)
    a       = MHA(hˡ⁻¹; keys t < L_b)                  ``heads`` heads (``attention_dropout`` on the weights)
    uˡ      = LayerNorm(hˡ⁻¹ + drop(a W_o))            post-norm, as PyTorch's TransformerEncoderLayer
    hˡ      = LayerNorm(uˡ + drop(MoE(uˡ)))            the MoE sees valid tokens only
    z       = hᴸ[b, L_b − 1]   ("last", the reference's last step, here the last *valid* one)
            | mean_{t < L_b} hᴸ[b, t]   ("mean")

No positional encoding (the reference adds none). Padding never leaks: keys t ≥ L_b are masked in
attention, padded positions are never routed (so they change no routing statistic and take no
expert), and pooling reads valid steps only; a padded row therefore gives the same z as the same
row stored shorter. Rows need L_b ≥ 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmpipe.adapters.moe import MoEFeedForward, Routing, dropout


@dataclass(frozen=True)
class EncoderShape:
    d_in: int
    d: int  # model width
    layers: int
    heads: int
    d_ff: int  # the dense FFN width the experts partition
    granularity: int
    expansion: int
    top_k: int | None
    activation: str
    dropout: float
    attention_dropout: float  # on the attention weights
    pooling: str  # "last" | "mean"


class MoETransformerLayer(nn.Module):
    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        d = shape.d
        self.heads, self.dropout, self.attention_dropout = shape.heads, shape.dropout, shape.attention_dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.moe = MoEFeedForward(d, shape.d_ff, shape.granularity, shape.expansion, shape.top_k,
                                  shape.activation, shape.dropout)

    def attention_parameters(self) -> int:
        """Parameters of the attention block (in- and out-projections with biases): 4d² + 4d."""
        return sum(p.numel() for p in (*self.qkv.parameters(), *self.out.parameters()))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, valid: torch.Tensor, noise_std: float,
                router_weight: torch.Tensor | None, keep: float) -> tuple[torch.Tensor, Routing]:
        """x (B, T, d); key_mask (B, 1, 1, T) True for valid keys; valid (n,) flat indices of the
        valid positions in B·T → (B, T, d) and the layer's `Routing` over the n valid tokens."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, d/H) each
        attended = F.scaled_dot_product_attention(  # (B, H, T, d/H)
            q, k, v, attn_mask=key_mask, dropout_p=self.attention_dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(b, t, d)
        x = self.norm1(x + dropout(self.out(attended), self.dropout, self.training))  # (B, T, d)
        flat = x.reshape(b * t, d)
        expert_out, routing = self.moe(flat.index_select(0, valid), noise_std, router_weight, keep)  # (n, d)
        ffn = flat.new_zeros(b * t, d).index_copy(0, valid, expert_out).view(b, t, d)
        return self.norm2(x + dropout(ffn, self.dropout, self.training)), routing


class MoESequenceEncoder(nn.Module):
    """The encoder of the module docstring for one modality."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        if shape.d % shape.heads:
            raise ValueError(f"width {shape.d} is not divisible by heads={shape.heads}")
        self.shape = shape
        self.project = nn.Linear(shape.d_in, shape.d, bias=False)
        self.layers = nn.ModuleList(MoETransformerLayer(shape) for _ in range(shape.layers))

    def routers(self) -> list[nn.Parameter]:
        """The router weight W_r (N_E, d) of every layer, first to last."""
        return [layer.moe.router.weight for layer in self.layers]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, noise_std: float = 0.0,
                router_weights: list[torch.Tensor] | None = None,
                keep: float = 1.0) -> tuple[torch.Tensor, list[Routing]]:
        """x (B, T, D_in), lengths (B,) in 1..T → z (B, d) and one `Routing` per layer.
        ``router_weights`` (one (N_E, d) per layer) replace the routers; ``keep`` < 1 sparsifies
        every layer over the valid tokens of this call."""
        b, t, _ = x.shape
        mask = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        valid = mask.reshape(-1).nonzero().squeeze(1)  # (n,)
        key_mask = mask[:, None, None, :]  # (B, 1, 1, T)
        h = self.project(x)  # (B, T, d)
        routings = []
        for i, layer in enumerate(self.layers):
            h, routing = layer(h, key_mask, valid, noise_std, None if router_weights is None else router_weights[i], keep)
            routings.append(routing)
        if self.shape.pooling == "last":
            z = h[torch.arange(b, device=x.device), lengths - 1]  # (B, d)
        else:
            z = torch.where(mask[:, :, None], h, 0.0).sum(1) / lengths[:, None].to(h.dtype)  # (B, d)
        return z, routings
