"""MulT-style transformer encoders (Tsai et al., "Multimodal Transformer for Unaligned Multimodal
Language Sequences", ACL 2019): the blocks of DLF's shared and specific encoders and of its
Language-Focused Attractor (`adapters/methods/dlf.py`).

For queries x (B, T_q, d) with valid lengths L_q (B,) and, for cross-modal attention, keys and
values y (B, T_k, d) with lengths L_k (self-attention: y = x)::

    e(x) = dropout_embed(√d · x + P(x))         P: sinusoidal positions 1, 2, ..., L (zero past L)
    one layer (pre-norm):
        x ← x + dropout_res(MHA(LN₀(x), LN₀(e(y)), LN₀(e(y))))      dropout_attn on the softmax
        x ← x + dropout_res(W₂ dropout_relu(ReLU(W₁ LN₁(x))))      W₁: d → 4d, W₂: 4d → d
    out  = LN(x after the last layer)

P is fairseq's sinusoidal table (MulT's): for position p and i < h = ⌊d/2⌋, P[p, i] = sin(p·ω_i),
P[p, h + i] = cos(p·ω_i), ω_i = 10000^(−i/(h−1)); a zero column when d is odd.

Which key step a query step sees (`visible`): never a key step at or past L_k (padding), and, when
``causal`` (DLF's ``attn_mask: true``), only key steps that began before the query step ended in
relative time, j·L_q < (i + 1)·L_k. For self-attention (L_q = L_k) that is exactly the causal
mask j ≤ i of MulT's code; for sequences of different lengths MulT's code offsets the mask by the
padded widths |T_k − T_q|, which would make a row's output depend on how far it was padded, so the
rule here reads the true lengths instead. Step 0 always sees key step 0: no row is ever fully
masked. With end-padded rows and this mask, a valid query step never attends to padding, and
nothing at or past a row's length changes an output before it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B,) lengths → (B, T) bool, True at the valid steps t < L_b."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_positions(lengths: torch.Tensor, steps: int, d: int) -> torch.Tensor:
    """The positional table P for positions 1..T, zero at steps past each row's length: (B, T, d)."""
    half = d // 2
    rate = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=lengths.device, dtype=torch.float32) * -rate)  # (h,)
    angles = torch.arange(1, steps + 1, device=lengths.device, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (T, 2h)
    if d % 2:
        table = F.pad(table, (0, 1))  # (T, d)
    return table[None] * step_mask(lengths, steps)[:, :, None]  # (B, T, d)


def visible(query_lengths: torch.Tensor, key_lengths: torch.Tensor, query_steps: int, key_steps: int,
            causal: bool) -> torch.Tensor:
    """(B, T_q, T_k) bool: True where query step i may attend to key step j (module docstring)."""
    i = torch.arange(query_steps, device=query_lengths.device)[None, :, None]  # (1, T_q, 1)
    j = torch.arange(key_steps, device=query_lengths.device)[None, None, :]  # (1, 1, T_k)
    l_q, l_k = query_lengths[:, None, None], key_lengths[:, None, None]  # (B, 1, 1)
    allowed = j < l_k  # (B, 1, T_k)
    if causal:
        allowed = allowed & (j * l_q < (i + 1) * l_k)  # (B, T_q, T_k)
    return allowed.expand(-1, query_steps, -1)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A Bernoulli(1 − p) keep mask (bool) from uniforms on 65,536 levels (p exact to 1/65536):
    four 16-bit draws per 64-bit random integer. torch's dropout draws one Bernoulli per element,
    which on the CPU was a quarter of a DLF training step (the attention weights are
    (B, heads, T, T)); this costs about a third of that."""
    n = math.prod(shape)
    bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    uniform = bits.view(torch.int16)[:n].view(shape)  # each of the 2^16 values equally likely
    return uniform >= round(p * 65536) - 32768


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, x · keep / (1 − p), with `keep_mask`."""
    if not training or p == 0.0:
        return x
    return x * keep_mask(x.shape, p, x.device) * (1.0 / (1.0 - p))


def additive_mask(allowed: torch.Tensor) -> torch.Tensor:
    """(B, T_q, T_k) bool → (B, 1, T_q, T_k) float: 0 where allowed, −inf elsewhere (added to the
    attention scores; computed once per encoder call and shared by its layers and heads)."""
    return torch.zeros(allowed.shape, device=allowed.device).masked_fill_(~allowed, float("-inf"))[:, None]


def _xavier(layer: nn.Linear) -> nn.Linear:
    """MulT's initialisation of its linear layers: Xavier-uniform weights, zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Attention(nn.Module):
    """Multi-head attention, softmax(QKᵀ/√d_h)V per head, with dropout on the attention weights.
    Q, K and V come from one (3d, d) input projection, as in MulT."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj = nn.Linear(d, 3 * d)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        self.out = _xavier(nn.Linear(d, d))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T_q, d); y (B, T_k, d), or None for self-attention (y = x); mask (B, 1, T_q, T_k)
        additive (`additive_mask`) → (B, T_q, d).

        Heads are folded into the batch for two plain batched matmuls: with DLF's head width of 5,
        torch's fused CPU attention and 4-d matmuls were slower. Dropout keeps or zeroes each weight
        and its 1/(1 − p) rescaling is applied to V, which is T/d_h times smaller."""
        b, t_q, d = x.shape
        h = self.heads
        if y is None:
            q, k, v = self.in_proj(x).chunk(3, dim=-1)  # (B, T, d) each
        else:
            weight, bias = self.in_proj.weight, self.in_proj.bias
            q = F.linear(x, weight[:d], bias[:d])
            k, v = F.linear(y, weight[d:], bias[d:]).chunk(2, dim=-1)
        t_k = k.shape[1]
        q = (q * (d // h) ** -0.5).view(b, t_q, h, d // h).transpose(1, 2).reshape(b * h, t_q, d // h)
        k = k.reshape(b, t_k, h, d // h).transpose(1, 2).reshape(b * h, t_k, d // h)
        v = v.reshape(b, t_k, h, d // h).transpose(1, 2).reshape(b * h, t_k, d // h)
        weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)).view(b, h, t_q, t_k) + mask, -1)  # (B, h, T_q, T_k)
        if self.training and self.dropout > 0:
            weights = weights * keep_mask(weights.shape, self.dropout, weights.device)
            v = v * (1.0 / (1.0 - self.dropout))
        attended = torch.bmm(weights.view(b * h, t_q, t_k), v)  # (B·h, T_q, d_h)
        return self.out(attended.view(b, h, t_q, d // h).transpose(1, 2).reshape(b, t_q, d))  # (B, T_q, d)


class Layer(nn.Module):
    """One pre-norm layer (module docstring)."""

    def __init__(self, d: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float) -> None:
        super().__init__()
        self.attention = Attention(d, heads, attn_dropout)
        self.norm_attention, self.norm_ffn = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = _xavier(nn.Linear(d, 4 * d)), _xavier(nn.Linear(4 * d, d))
        self.relu_dropout, self.res_dropout = relu_dropout, res_dropout

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T_q, d); y (B, T_k, d) the embedded keys, or None for self-attention; mask (B, 1, T_q, T_k)."""
        q = self.norm_attention(x)
        kv = None if y is None else self.norm_attention(y)  # MulT normalises the keys with the same LayerNorm
        x = x + dropout(self.attention(q, kv, mask), self.res_dropout, self.training)
        hidden = dropout(F.relu(self.fc1(self.norm_ffn(x))), self.relu_dropout, self.training)  # (B, T_q, 4d)
        return x + dropout(self.fc2(hidden), self.res_dropout, self.training)


class MulTEncoder(nn.Module):
    """A stack of ``layers`` layers with positions, scaling and a final LayerNorm (module docstring).

    ``forward(x, lengths)`` is self-attention; ``forward(x, lengths, y, y_lengths)`` is cross-modal
    attention with x as the query (its output lives on x's time axis).
    """

    def __init__(self, d: int, heads: int, layers: int, *, attn_dropout: float = 0.0, relu_dropout: float = 0.0,
                 res_dropout: float = 0.0, embed_dropout: float = 0.0, causal: bool = True) -> None:
        super().__init__()
        self.d, self.causal, self.embed_dropout = d, causal, embed_dropout
        self.layers = nn.ModuleList(Layer(d, heads, attn_dropout, relu_dropout, res_dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """√d · x + P, then dropout: (B, T, d) → (B, T, d)."""
        positions = sinusoidal_positions(lengths, x.shape[1], self.d)
        return dropout(math.sqrt(self.d) * x + positions, self.embed_dropout, self.training)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor | None = None,
                y_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T_q, d) with lengths (B,); y (B, T_k, d) with y_lengths (B,) or None → (B, T_q, d)."""
        h = self.embed(x, lengths)
        if y is None:
            keys, allowed = None, visible(lengths, lengths, x.shape[1], x.shape[1], self.causal)
        else:
            assert y_lengths is not None
            keys = self.embed(y, y_lengths)
            allowed = visible(lengths, y_lengths, x.shape[1], y.shape[1], self.causal)
        mask = additive_mask(allowed)
        for layer in self.layers:
            h = layer(h, keys, mask)
        return self.norm(h)
