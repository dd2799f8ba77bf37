"""A fine-grained mixture-of-experts feed-forward layer (the S3 paper §4.2–4.4, Eq. 18–22), with the
routing statistics S3's losses read and S3's inference-time pruning (§5.3).

For a token x ∈ R^d, with N_E = E·G experts of hidden width d_ff / G (granularity G, expansion E,
Ludziejewski et al. 2024) and a bias-free linear router W_r ∈ R^{N_E × d}::

    h(x)   = W_r x                                    router logits          (Eq. 20)
    h̃(x)   = h(x) + ε,  ε ~ N(0, σ² I)                 only when σ > 0 in training mode (S3's Specialization)
    p(x)   = softmax(h̃(x))                            over all N_E experts
    S(x)   = TopK(p(x), k)                            k = G by default: the active expert
                                                      parameters per token equal one dense FFN
    y(x)   = Σ_{e ∈ S(x)} p_e(x) · E_e(x)             no renormalisation of the k gates (V-MoE)
    E_e(x) = W2_e drop(act(W1_e x + b1_e)) + b2_e      each expert shaped like the FFN (Eq. 17, 19)

Sparsification (``keep`` = ρ < 1): among the n·k selected (token, expert) pairs of the call, only
the ⌈ρ·n·k⌉ with the largest gates p_e(x) are computed; the others are dropped (their gate is
zero, nothing renormalised). A call is one layer of one modality on one batch, so "the batch" the
paper ranks over is whatever the caller passes in one call.

Computation: the selected pairs are sorted by expert and cut into blocks of ``block`` rows; each
block belongs to one expert (the last block of an expert is zero-padded), and all blocks run in two
batched matmuls whose weights are gathered per block. No Python loop over experts; padding is
less than one block per expert, and a collapsed routing (every token to the same few experts)
costs no more than a balanced one. The only host synchronisation is the block count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class _ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward makes the gradient contiguous (torch's grouped matmul refuses
    an expanded one, e.g. from ``.sum()``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


_contiguous_grad = _ContiguousGrad.apply


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, x · 1[u ≥ p] / (1 − p) with u ~ U(0, 1): the distribution of F.dropout,
    drawn from uniform numbers, which on the CPU is about twice as fast as F.dropout's Bernoulli
    draws (dropout was a fifth of an S3 training step)."""
    if not training or p == 0.0:
        return x
    return x * ((torch.rand_like(x) >= p) * (1.0 / (1.0 - p)))


def kept_pairs(n_pairs: int, keep: float) -> int:
    """⌈ρ·n⌉ pairs kept of ``n_pairs`` at preservation ratio ρ = ``keep`` ∈ (0, 1]; ρ·n is rounded to
    9 decimals first so that 0.7 · 10 (7.000000000000001 in floating point) keeps 7, not 8."""
    return min(n_pairs, math.ceil(round(keep * n_pairs, 9)))


@dataclass
class Routing:
    """What a router did on the n tokens of one call (the losses and statistics read it).

    logits: (n, N_E) clean logits W_r x; noisy_logits: (n, N_E) h + ε, or None without noise;
    probs: (n, N_E) softmax of the clean logits; experts: (n, k) the selected experts (by noisy
    gate); gates: (n, k) their gates p̃_e(x), 0 where Sparsification dropped the pair; kept: (n, k)
    bool, the pairs computed; noise_std: σ.
    """

    logits: torch.Tensor
    noisy_logits: torch.Tensor | None
    probs: torch.Tensor
    experts: torch.Tensor
    gates: torch.Tensor
    kept: torch.Tensor
    noise_std: float
    pruned: bool = False


class MoEFeedForward(nn.Module):
    """The MoE layer of the module docstring; ``forward`` takes the valid tokens as rows (n, d)."""

    def __init__(self, d: int, d_ff: int, granularity: int, expansion: int, top_k: int | None = None,
                 activation: str = "relu", dropout: float = 0.0, block_divisor: int = 2,
                 kernel: str = "auto") -> None:
        super().__init__()
        if d_ff % granularity:
            raise ValueError(f"d_ff={d_ff} is not divisible by the granularity G={granularity}")
        self.d, self.d_ff, self.granularity, self.expansion = d, d_ff, granularity, expansion
        self.n_experts = expansion * granularity
        self.hidden = d_ff // granularity
        self.top_k = granularity if top_k is None else top_k
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"top_k={self.top_k} must lie in 1..{self.n_experts} (the number of experts)")
        self.activation, self.dropout = activation, dropout
        self.block_divisor, self.kernel = block_divisor, kernel  # kernel: "auto" | "grouped" | "blocks"
        self.router = nn.Linear(d, self.n_experts, bias=False)
        # nn.Linear's initialisation per expert: U(±1/√fan_in) for weights and biases
        e, h = self.n_experts, self.hidden
        self.w1 = nn.Parameter(torch.empty(e, d, h).uniform_(-d**-0.5, d**-0.5))  # (N_E, d, h)
        self.b1 = nn.Parameter(torch.empty(e, h).uniform_(-d**-0.5, d**-0.5))  # (N_E, h)
        self.w2 = nn.Parameter(torch.empty(e, h, d).uniform_(-h**-0.5, h**-0.5))  # (N_E, h, d)
        self.b2 = nn.Parameter(torch.empty(e, d).uniform_(-h**-0.5, h**-0.5))  # (N_E, d)

    @staticmethod
    def threshold(routing: Routing) -> torch.Tensor:
        """The k-th largest noisy logit of each token, (n, 1): the load loss's threshold, read off the
        router's (sorted) top-k instead of sorting again."""
        noisy = routing.logits if routing.noisy_logits is None else routing.noisy_logits
        return noisy.gather(1, routing.experts[:, -1:])

    def expert_parameters(self) -> int:
        """Parameters of one expert: 2·d·h + h + d."""
        return 2 * self.d * self.hidden + self.hidden + self.d

    def route(self, x: torch.Tensor, noise_std: float = 0.0, router_weight: torch.Tensor | None = None,
              keep: float = 1.0) -> Routing:
        """Router logits, top-k selection and gates for tokens x (n, d); ``router_weight`` (N_E, d)
        replaces W_r (S3 rebuilds its Specialization components with the routers of that stage)."""
        logits = F.linear(x, self.router.weight if router_weight is None else router_weight)  # (n, N_E)
        noisy = logits + noise_std * torch.randn_like(logits) if noise_std > 0 and self.training else None
        probs = logits.softmax(-1)  # (n, N_E)
        gate_probs = probs if noisy is None else noisy.softmax(-1)
        gates, experts = gate_probs.topk(self.top_k, dim=-1)  # (n, k) each
        kept = torch.ones_like(gates, dtype=torch.bool)
        pruned = keep < 1.0
        if pruned:
            flat = gates.detach().reshape(-1)  # (n·k,)
            chosen = flat.topk(kept_pairs(len(flat), keep)).indices
            kept = torch.zeros_like(flat, dtype=torch.bool).index_fill_(0, chosen, True).view_as(gates)
            gates = gates * kept
        return Routing(logits, noisy, probs, experts, gates, kept, noise_std, pruned)

    def forward(self, x: torch.Tensor, noise_std: float = 0.0, router_weight: torch.Tensor | None = None,
                keep: float = 1.0) -> tuple[torch.Tensor, Routing]:
        """x: (n, d) valid tokens → y (n, d) and the `Routing`."""
        routing = self.route(x, noise_std, router_weight, keep)
        return self.dispatch(x, routing), routing

    def dispatch(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """Σ_{kept e} g_e(x) E_e(x) for every token (n, d) → (n, d): the selected pairs sorted by
        expert, then `grouped` (one grouped matmul per expert layer) or `blocks`."""
        n, d = x.shape
        k = routing.experts.shape[1]
        token = torch.arange(n, device=x.device).repeat_interleave(k)  # (n·k,)
        expert, gate = routing.experts.reshape(-1), routing.gates.reshape(-1)  # (n·k,)
        if routing.pruned:
            kept = routing.kept.reshape(-1)
            token, expert, gate = token[kept], expert[kept], gate[kept]
        if len(expert) == 0:
            return x.new_zeros(n, d)
        expert, order = expert.sort(stable=True)  # (P,) pairs grouped by expert
        token, gate = token[order], gate[order]
        counts = torch.bincount(expert, minlength=self.n_experts)  # (N_E,)
        if self.uses_grouped_mm(x):
            return self.grouped(x, routing, token, expert, gate, counts)
        return self.blocks(x, token, expert, gate, counts)

    def uses_grouped_mm(self, x: torch.Tensor) -> bool:
        """torch's grouped matmul (CPU, float32, rows a multiple of 16 bytes), unless ``kernel``
        says otherwise; else the padded blocks."""
        if self.kernel != "auto":
            return self.kernel == "grouped"
        return (hasattr(torch, "_grouped_mm") and x.device.type == "cpu" and x.dtype == torch.float32
                and self.d % 4 == 0 and self.hidden % 4 == 0)

    def grouped(self, x: torch.Tensor, routing: Routing, token: torch.Tensor, expert: torch.Tensor,
                gate: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Expert-sorted pairs through two grouped matmuls (rows of expert e are one group), no
        padding. The gate (and the dropout mask) multiply the hidden units, which are narrower
        than the output when G > 2 ffn_ratio; the gated output bias Σ_e g_e b2_e is one (n, N_E)
        × (N_E, d) product."""
        n, d = x.shape
        offsets = torch.cumsum(counts, 0).to(torch.int32)  # (N_E,) end of each expert's rows
        rows = x.index_select(0, token)  # (P, d)
        hidden = _contiguous_grad(torch._grouped_mm(rows, self.w1, offs=offsets)) + self.b1[expert]  # (P, h)
        hidden = ACTIVATIONS[self.activation](hidden)
        scale = gate[:, None]  # (P, 1)
        if self.training and self.dropout > 0:
            scale = (torch.rand_like(hidden) >= self.dropout) * (scale / (1.0 - self.dropout))  # (P, h)
        out = _contiguous_grad(torch._grouped_mm(hidden * scale, self.w2, offs=offsets))  # (P, d)
        weights = torch.zeros(n, self.n_experts, dtype=x.dtype, device=x.device)
        weights = weights.scatter(1, routing.experts, routing.gates)  # (n, N_E), 0 for dropped pairs
        return x.new_zeros(n, d).index_add(0, token, out) + weights @ self.b2  # (n, d)

    def blocks(self, x: torch.Tensor, token: torch.Tensor, expert: torch.Tensor, gate: torch.Tensor,
               counts: torch.Tensor) -> torch.Tensor:
        """Expert-sorted pairs cut into blocks of ``block`` rows, each of one expert (the last block
        of an expert zero-padded), through two batched matmuls with per-block weights."""
        n, d = x.shape
        n_pairs = len(expert)
        block = max(1, math.ceil(n_pairs / (self.block_divisor * self.n_experts)))
        blocks = (counts + block - 1) // block  # (N_E,) blocks per expert
        n_blocks = int(blocks.sum())  # the one host synchronisation
        slots = n_blocks * block
        first_pair = torch.cumsum(counts, 0) - counts  # (N_E,) index of each expert's first sorted pair
        first_block = torch.cumsum(blocks, 0) - blocks  # (N_E,)
        slot = first_block[expert] * block + (torch.arange(n_pairs, device=x.device) - first_pair[expert])  # (P,)
        block_expert = torch.repeat_interleave(torch.arange(self.n_experts, device=x.device), blocks,
                                               output_size=n_blocks)  # (n_blocks,)
        # a padding slot reads token n, a zero row appended to x, and writes back there
        source = torch.full((slots,), n, dtype=torch.long, device=x.device).index_copy_(0, slot, token)  # (S,)
        slot_gate = gate.new_zeros(slots).index_copy(0, slot, gate)  # (S,)
        rows = torch.cat([x, x.new_zeros(1, d)]).index_select(0, source)  # (S, d)
        hidden = torch.baddbmm(self.b1[block_expert].unsqueeze(1), rows.view(n_blocks, block, d),
                               self.w1[block_expert])  # (n_blocks, block, h)
        hidden = dropout(ACTIVATIONS[self.activation](hidden), self.dropout, self.training)
        out = torch.baddbmm(self.b2[block_expert].unsqueeze(1), hidden, self.w2[block_expert])  # (n_blocks, block, d)
        weighted = out.view(slots, d) * slot_gate[:, None]  # (S, d)
        return x.new_zeros(n + 1, d).index_add(0, source, weighted)[:n]  # (n, d)

    def reference(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """The same output computed naively, every expert on every token, then masked: the oracle
        the tests compare `dispatch` with (N_E times the compute; never used in training)."""
        hidden = ACTIVATIONS[self.activation](torch.einsum("nd,edh->neh", x, self.w1) + self.b1)  # (n, N_E, h)
        every = torch.einsum("neh,ehd->ned", hidden, self.w2) + self.b2  # (n, N_E, d)
        weights = torch.zeros(x.shape[0], self.n_experts, dtype=x.dtype, device=x.device)
        weights = weights.scatter_add(1, routing.experts, routing.gates * routing.kept)  # (n, N_E)
        return (weights[:, :, None] * every).sum(1)
