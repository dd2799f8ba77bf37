"""DLF: Disentangled-Language-Focused multimodal representation learning for sentiment analysis
(Wang et al., "DLF: Disentangled-Language-Focused Multimodal Sentiment Analysis", AAAI 2025; public
code pwang322/DLF), trained on cached frozen features. **Supervised** regression of one continuous
label (by default the label declared ``sentiment``) from exactly three sequence inputs, in the order
language, audio, vision (the MMSA order T, A, V; the ``A``/``V`` in config names are the second and
third input).

Model, for inputs X_m (B, T_m, D_m) with valid lengths L_m, m ∈ {L, A, V}; every encoder E is a
MulT-style transformer encoder (`adapters/mult.py`: d = 50, 10 heads, FFN 4d, pre-norm, √d-scaled
sinusoidal positions, causal mask)::

    X̂_m   = Conv1d_m(X_m)                   temporal projection D_m → d, kernel k, no bias
    Sp_m  = E^Sp_m(X̂_m),  Sh_m = E^Sh(X̂_m)  three specific encoders, ONE shared encoder (2 layers)
    X̂'_m  = D_m([Sp_m ⊕ Sh_m])              decoder: Conv1d(2d → d, kernel 1, no bias)
    Sp'_m = E^Sp_m(X̂'_m)                    the specific features of the reconstruction
    HSh   = R([last(E^c_L(Sh_L)) ⊕ last(E^c_A(Sh_A)) ⊕ last(E^c_V(Sh_V))])   shared branch, 3d
    LFA   (language is the query):  h_L = last(E^mem_L(Sp_L))                         (2 layers)
                                    h_A = last(E^mem_A(E^{L←A}(Sp_L; Sp_A)))           (2 + 3 layers)
                                    h_V = last(E^mem_V(E^{L←V}(Sp_L; Sp_V)))           (2 + 3 layers)
    HSp_m = R(h_m)                          R(x) = x + W₂ dropout(ReLU(W₁ x))  (output_dropout)
    F     = R([σ(G_L HSp_L) ⊕ σ(G_A HSp_A) ⊕ σ(G_V HSp_V) ⊕ σ(G_c HSh)])        fused, 6d
    ŷ = w·F,  ŷ_c = w_c·HSh,  ŷ_m = w_m·HSp_m                 hierarchical predictions

last(·) is the output at a row's last valid step. Losses (`adapters/losses.py`, DLF section), with
y the raw label::

    L_task = 1·|ŷ − y| + 1·|ŷ_c − y| + 3·|ŷ_L − y| + 1·|ŷ_A − y| + 1·|ŷ_V − y|        (means)
    L_r = Σ_m MSE(X̂'_m, X̂_m)    L_s = Σ_m MSE(Sp_m, Sp'_m)     (over valid steps)
    L_m = triplet(Linear_m(flatten Sh_m), y; margin 0.15·|y_a − y_n|)  over the 3 modalities' rows
    L_o = Σ_m mean_t max(0, cos(Sp_m,t, Sh_m,t))
    L   = L_task + 0.1·(L_s + L_r) + 0.01·(L_m + L_o)

Schedule (`adapters/accumulation.py`, the MMSA code's): Adam lr 1e-4 (no weight decay), minibatch
16, gradients accumulated over 10 minibatches with value clipping at 0.6 after every backward,
ReduceLROnPlateau(factor 0.5, patience 5) on the validation L1 of ŷ, early stopping 10 epochs after
the best one, the best validation checkpoint restored.

Facts from the code that the paper does not state, and where the code is followed over the paper:
the shared encoder is one module for all three modalities; the reconstruction target is the
projected input X̂_m, not the raw features; L_task's weights (language 3); the loss weights 0.1 /
0.01; ``attn_mask`` (causal attention everywhere); the LFA memories are 2 layers for L→L and 3 for
A→L and V→L; the triplet features are a Linear of the flattened shared sequence (d·T → d), whose
positives are the rows with exactly the same label (the same sample's other modalities included)
and whose margin grows with the label gap; L_o compares each time step's vectors (``ortho_chunk`` =
d; MOSEI's config splits each vector into chunks of 10); MOSI's dropouts and kernel are the
defaults, MOSEI's are `MOSEI`.

Deliberate differences from the code (frozen cached features; padding never leaks):
- text is a cached feature (the MMSA files' BERT ``text`` array or mmpipe's token-level BERT
  extraction), not BERT fine-tuned in the loop; ``text_dropout`` applies to it as to BERT's output;
- lengths come from the data: every T (and the triplet Linear's d·T) is the entry's, and attention,
  pooling, the losses and the "last step" read the true lengths. The code attends over padding
  (causal mask only) and takes the last *padded* step. The projection pads the left with k − 1
  zeros (a causal window ending at each step) instead of the code's unpadded window (T − k + 1
  outputs): the code's outputs are exactly this one's from step k − 1 on, and no window of a valid
  step reaches into the padding. Steps past a row's length are zeroed before flattening;
- cross-modal attention between sequences of different lengths uses the relative-time causal rule
  of `adapters/mult.py` (the code's data is aligned, where it equals the code's mask);
- the validation L1 is the exact mean over the validation rows (the code averages batch means and
  rounds to 4 decimals); leftover minibatches of an epoch are skipped, not computed and discarded
  (`adapters/accumulation.py`); an epoch cap (``max_epochs``) bounds the code's unbounded loop.

Choices where paper and code are silent: the decoder's input order [Sp ⊕ Sh] (the code's; the paper
writes [Sh ⊕ Sp]: the same model up to the weight layout); the gates are σ(Linear(x)) of the high
features HSp/HSh as the fusion input; attention dropouts: the specific and shared-branch encoders
of modality m and the cross-modal block L←m use m's (``attn_dropout`` / ``_a`` / ``_v``), the shared
encoder and the memories use ``attn_dropout`` (MulT's convention); inputs are used raw
(``standardize=False``, as the code) and rows are padded with zeros.

Ablations (paper Table 2) are config, each removing its part (its parameters and loss terms):
``modalities`` = L, A, V, LA, LV (only those inputs are used; without language the first kept
modality is the query of the attractor); ``use_recon`` / ``use_specific`` / ``use_triplet`` /
``use_ortho`` = False (w/o L_r, L_s, L_m, L_o); ``fdm=False`` (w/o FDM: no shared encoder,
decoders, shared branch or decoupling losses; the specific encoders feed the LFA); ``lfa=False``
(w/o LFA, "replaced by three separate Query components like MulT": every kept modality is the query
of cross-modal blocks from each other one, their outputs concatenated into a 3-layer memory);
``hierarchical=False`` (w/o HP: only the output loss; the shared and specific heads are gone).

Components (pooled per row over its valid steps, so the evaluator's probes and Δ apply as for
MultiLoReFT): z_s_<m> = mean_t Sh_m (the shared space, per modality), z_<m> = mean_t Sp_m (the
specific space), z_s = mean_m z_s_<m>, lf_<m> = HSp_m (the language-focused features: lf_<language>
is L→L, lf_<audio> is A→L, lf_<vision> is V→L), fused = F, and prediction = ŷ (N, 1), DLF's own
regression output, which the evaluator scores as it is (`adapters/predictions.py`). An ablation
without a part has no component for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.accumulation import Schedule, train_accumulated
from mmpipe.adapters.base import AdapterMethod, Dims, InputScaler, ProgressFn
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.losses import dlf_task_loss, dlf_triplet_loss, masked_mse, soft_orthogonality_loss
from mmpipe.adapters.mult import MulTEncoder, dropout, step_mask
from mmpipe.adapters.predictions import PREDICTION, OwnPrediction
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.targets import target_name
from mmpipe.adapters.training import check_minibatch, resolve_device, seed_everything, single_cpu_thread
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import (
    DEVICE,
    EPOCHS,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    SHARE,
    WIDTH,
    Checked,
    Length,
    between,
)

ROLES = ("L", "A", "V")  # the letters of the first, second and third input in ``modalities``
SUBSETS = {"LAV": None, "L": "only L", "A": "only A", "V": "only V", "LA": "L & A", "LV": "L & V"}
ROWS_PER_CHUNK = 256  # rows per forward pass when predicting or transforming many rows

# MOSEI's values in the code's config (the defaults are MOSI's); `mmpipe fit --set` or the data
# defaults of the fit workflow apply them
MOSEI: dict[str, Any] = {"conv_kernel": 3, "attn_dropout": 0.5, "attn_dropout_a": 0.0, "attn_dropout_v": 0.0,
                         "embed_dropout": 0.0, "text_dropout": 0.1, "output_dropout": 0.5, "ortho_chunk": 10}


@dataclass(frozen=True)
class DLFConfig(Checked):
    target: str | None = None  # None: the label declared "sentiment" (else the dataset's joint label)
    # architecture (the code's config, MOSI)
    d_model: Annotated[int, WIDTH] = 50  # dst_feature_dim
    heads: Annotated[int, between(1, 64)] = 10  # must divide d_model
    layers: Annotated[int, between(1, 64)] = 2  # nlevels: encoders, shared branch, cross-modal blocks
    memory_layers_self: Annotated[int, between(1, 64)] = 2  # L→L memory
    memory_layers_cross: Annotated[int, between(1, 64)] = 3  # A→L and V→L memories
    conv_kernel: Annotated[int, between(1, 64)] = 5  # MOSI 5, MOSEI 3
    causal: bool = True  # attn_mask
    attn_dropout: Annotated[float, SHARE] = 0.3  # language (and the shared encoder, the memories)
    attn_dropout_a: Annotated[float, SHARE] = 0.2  # attention dropout of the audio encoders
    attn_dropout_v: Annotated[float, SHARE] = 0.0  # attention dropout of the vision encoders
    relu_dropout: Annotated[float, SHARE] = 0.0  # dropout after the encoders' FFN ReLU
    res_dropout: Annotated[float, SHARE] = 0.0  # dropout on the encoders' residual branches
    embed_dropout: Annotated[float, SHARE] = 0.2  # dropout on the encoders' input embeddings
    text_dropout: Annotated[float, SHARE] = 0.5  # dropout on the language input
    output_dropout: Annotated[float, SHARE] = 0.5  # dropout in the residual heads R
    standardize: bool = False  # inputs standardised with train statistics (the code uses them raw)
    # losses
    task_weights: Annotated[tuple[float, ...], NON_NEGATIVE, Length(5)] = (1.0, 1.0, 3.0, 1.0, 1.0)  # ŷ, ŷ_c, L, A, V
    recon_weight: Annotated[float, NON_NEGATIVE] = 0.1  # weight of L_r (reconstruction)
    specific_weight: Annotated[float, NON_NEGATIVE] = 0.1  # weight of L_s (specific consistency)
    triplet_weight: Annotated[float, NON_NEGATIVE] = 0.01  # weight of L_m (triplet on shared features)
    ortho_weight: Annotated[float, NON_NEGATIVE] = 0.01  # weight of L_o (shared ⟂ specific)
    triplet_margin: Annotated[float, NON_NEGATIVE] = 0.15  # μ = margin · |y_anchor − y_negative|
    ortho_chunk: Annotated[int, WIDTH] = 50  # must divide d_model (MOSI 50, MOSEI 10)
    # ablations (paper Table 2)
    modalities: Literal["LAV", "L", "A", "V", "LA", "LV"] = "LAV"
    use_recon: bool = True  # L_r on; False: ablated
    use_specific: bool = True  # L_s on; False: ablated
    use_triplet: bool = True  # L_m on; False: ablated
    use_ortho: bool = True  # L_o on; False: ablated
    fdm: bool = True  # the feature disentanglement module (shared + specific); False: ablated
    lfa: bool = True  # the language-focused attractor (LFA); False: ablated
    hierarchical: bool = True  # the hierarchical predictions ŷ_c, ŷ_m and their losses; False: ablated
    # schedule (adapters/accumulation.py)
    lr: Annotated[float, POSITIVE] = 1e-4
    # not "batch_size": fingerprints drop that name, and it shapes results; at most the train rows
    minibatch_size: Annotated[int, between(2, 2**20)] = 16
    accumulate: Annotated[int, between(1, 10_000)] = 10  # update_epochs
    clip_value: Annotated[float | None, POSITIVE] = 0.6  # clip_grad_value_; None: no clipping
    plateau_factor: Annotated[float, FRACTION] = 0.5  # ReduceLROnPlateau needs a factor < 1
    plateau_patience: Annotated[int, between(0, 1_000_000)] = 5  # ReduceLROnPlateau's patience (epochs)
    early_stop: Annotated[int, EPOCHS] = 10  # stop this many epochs after the best val epoch
    min_improvement: Annotated[float, NON_NEGATIVE] = 1e-6
    max_epochs: Annotated[int, EPOCHS] = 200
    # intra-op CPU threads of the fit: 1 as every adapter fit (on a busy machine more threads spin-wait);
    # 2 on two free cores made a step 1.45x faster. A setting, not a speed knob: the thread count can
    # change float rounding, so runs with different counts are different runs
    cpu_threads: Annotated[int, between(1, 1024)] = 1
    device: Annotated[str, DEVICE] = "auto"

    def check(self) -> None:
        if self.d_model % self.heads:
            raise UserError(f"dlf: heads={self.heads} must divide d_model={self.d_model}")
        if self.d_model % self.ortho_chunk:
            raise UserError(f"dlf: ortho_chunk={self.ortho_chunk} must divide d_model={self.d_model}")

    def schedule(self) -> Schedule:
        return Schedule(self.lr, self.minibatch_size, self.accumulate, self.clip_value, self.plateau_factor,
                        self.plateau_patience, self.early_stop, self.min_improvement, self.max_epochs)


class ResidualMLP(nn.Module):
    """R(x) = x + W₂ dropout(ReLU(W₁ x)), W₁, W₂: w → w — DLF's projection of a last step into a
    higher-level feature, and its fusion layer."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.first, self.second, self.dropout = nn.Linear(width, width), nn.Linear(width, width), dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, w) → (B, w)
        return x + self.second(dropout(F.relu(self.first(x)), self.dropout, self.training))


def last_step(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The output at each row's last valid step: (B, T, w), (B,) → (B, w)."""
    return h[torch.arange(len(h), device=h.device), lengths - 1]


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each row's valid steps: (B, T, w), (B, T) bool → (B, w)."""
    weights = mask.to(h.dtype)[:, :, None]  # (B, T, 1)
    return (h * weights).sum(1) / weights.sum(1).clamp_min(1)


def infer_lengths(values: torch.Tensor) -> torch.Tensor:
    """Lengths of end-padded rows from their zero padding: one past the last step with a non-zero
    feature (0 for an all-zero row). (N, T, D) → (N,) int64."""
    nonzero = values.ne(0).any(-1)  # (N, T)
    steps = torch.arange(1, values.shape[1] + 1, device=values.device)  # (T,)
    return (nonzero * steps).max(1).values.long()


@dataclass
class Forward:
    """What one forward pass computed (only what the caller asked for)."""

    lengths: dict[str, torch.Tensor]  # modality -> (B,)
    masks: dict[str, torch.Tensor]  # modality -> (B, T_m) bool
    projected: dict[str, torch.Tensor]  # X̂_m (B, T_m, d)
    specific: dict[str, torch.Tensor]  # Sp_m (B, T_m, d)
    shared: dict[str, torch.Tensor]  # Sh_m (B, T_m, d); empty without the FDM
    high: dict[str, torch.Tensor]  # HSp_m (B, w_m), keyed by the branch's modality
    shared_high: torch.Tensor | None  # HSh (B, n·d)
    fused: torch.Tensor  # F (B, width)
    output: torch.Tensor  # ŷ (B,)
    heads: dict[str, torch.Tensor]  # "shared" and each modality -> (B,); empty without HP
    reconstructed: dict[str, torch.Tensor] | None = None  # X̂'_m (B, T_m, d), with the losses
    re_specific: dict[str, torch.Tensor] | None = None  # Sp'_m (B, T_m, d)
    aligned: dict[str, torch.Tensor] | None = None  # Linear_m(flatten Sh_m) (B, d), the triplet features


@METHODS.register("dlf")
class DLF(AdapterMethod):
    name = "dlf"
    description = ("DLF (Wang et al. 2025): shared/specific disentanglement, language-focused attractor, "
                   "hierarchical predictions (supervised, 3 sequences: language, audio, vision)")
    Config = DLFConfig
    modality_count = (3, 3)
    input_kinds = frozenset({"sequence"})
    ablation_fields = frozenset({"modalities", "use_recon", "use_specific", "use_triplet", "use_ortho", "fdm",
                                 "lfa", "hierarchical"})

    def __init__(self, config: DLFConfig, dims: Dims, steps: Mapping[str, int]) -> None:
        super().__init__()
        if len(dims) != 3:
            raise UserError(f"dlf takes exactly 3 modalities (language, audio, vision), got {len(dims)} "
                            f"({', '.join(dims)})")
        c, d = config, config.d_model
        self.config = c
        self.modalities: tuple[str, ...] = tuple(dims)
        self.dim_map = dict(dims)
        self.role = dict(zip(self.modalities, ROLES, strict=True))  # modality -> L / A / V
        self.kept = tuple(m for m in self.modalities if self.role[m] in c.modalities)
        self.focus = self.kept[0]  # language whenever it is kept: it is the first input
        self.scaler = InputScaler(dims)
        self.register_buffer("steps", torch.tensor([int(steps[m]) for m in self.modalities]))
        attention = dict(zip(self.modalities, (c.attn_dropout, c.attn_dropout_a, c.attn_dropout_v), strict=True))

        def encoder(layers: int, dropout: float, width: int = d) -> MulTEncoder:
            return MulTEncoder(width, c.heads, layers, attn_dropout=dropout, relu_dropout=c.relu_dropout,
                               res_dropout=c.res_dropout, embed_dropout=c.embed_dropout, causal=c.causal)

        self.project = nn.ModuleDict({m: nn.Conv1d(dims[m], d, c.conv_kernel, bias=False) for m in self.kept})
        self.specific = nn.ModuleDict({m: encoder(c.layers, attention[m]) for m in self.kept})
        n = len(self.kept)
        if c.fdm:
            self.shared = encoder(c.layers, c.attn_dropout)
            self.decoders = nn.ModuleDict({m: nn.Conv1d(2 * d, d, 1, bias=False) for m in self.kept})
            self.align = nn.ModuleDict({m: nn.Linear(d * int(steps[m]), d) for m in self.kept})
            self.shared_branch = nn.ModuleDict({m: encoder(c.layers, attention[m]) for m in self.kept})
            self.shared_high = ResidualMLP(n * d, c.output_dropout)
            self.shared_gate = nn.Linear(n * d, n * d)
            if c.hierarchical:
                self.shared_head = nn.Linear(n * d, 1)
        self.cross = nn.ModuleDict()
        self.memory = nn.ModuleDict()
        widths = {}
        for m in self.kept:
            sources = self.sources(m)
            for source in sources:
                self.cross[self.cross_key(m, source)] = encoder(c.layers, attention[source])
            widths[m] = d * max(1, len(sources))
            layers = c.memory_layers_cross if sources else c.memory_layers_self
            self.memory[m] = encoder(layers, c.attn_dropout, widths[m])
        self.high = nn.ModuleDict({m: ResidualMLP(widths[m], c.output_dropout) for m in self.kept})
        self.gates = nn.ModuleDict({m: nn.Linear(widths[m], d) for m in self.kept})
        if c.hierarchical:
            self.heads = nn.ModuleDict({m: nn.Linear(widths[m], 1) for m in self.kept})
        width = n * d + (n * d if c.fdm else 0)
        self.fusion = ResidualMLP(width, c.output_dropout)
        self.output = nn.Linear(width, 1)

    # -- structure -------------------------------------------------------------------------------
    def sources(self, branch: str) -> tuple[str, ...]:
        """The key modalities of a branch's cross-modal blocks. LFA: branch m ≠ focus is focus ← m
        (one block), the focus's own branch has none (self-attention memory). Without the LFA
        (MulT-style): branch m is m ← every other kept modality."""
        if self.config.lfa:
            return () if branch == self.focus else (branch,)
        return tuple(o for o in self.kept if o != branch)

    def cross_key(self, branch: str, source: str) -> str:
        query = self.focus if self.config.lfa else branch
        return f"{query}_from_{source}"

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        """The full model's components (an ablation has the subset its parts produce)."""
        return (*(components.shared_part(m) for m in modalities), *(components.specific(m) for m in modalities),
                components.SHARED, *(components.per_modality("lf", m) for m in modalities), components.FUSED,
                PREDICTION)

    @classmethod
    def ablation(cls, config: DLFConfig) -> str | None:
        """The paper's Table 2 row names of the ablations ``config`` applies, joined by ", "."""
        names = [SUBSETS[config.modalities]] if SUBSETS[config.modalities] else []
        names += [label for label, applies in (
            ("w/o Lr", not config.use_recon), ("w/o Ls", not config.use_specific),
            ("w/o Lm", not config.use_triplet), ("w/o Lo", not config.use_ortho),
            ("w/o FDM", not config.fdm), ("w/o LFA", not config.lfa), ("w/o HP", not config.hierarchical),
        ) if applies]
        return ", ".join(names) or None

    def loss_weights(self) -> dict[str, float]:
        """The decoupling terms that are trained and their weights (none without the FDM)."""
        c = self.config
        if not c.fdm:
            return {}
        weights = {"recon": (c.use_recon, c.recon_weight), "specific": (c.use_specific, c.specific_weight),
                   "triplet": (c.use_triplet, c.triplet_weight), "ortho": (c.use_ortho, c.ortho_weight)}
        return {name: w for name, (on, w) in weights.items() if on and w > 0}

    def task_weights(self) -> dict[str, float]:
        """Weights of the task L1 terms by prediction: "output", then (with HP) "shared" and each
        kept modality's branch (language 3, audio 1, vision 1 by default)."""
        out, shared, *per_role = self.config.task_weights
        weights = {"output": out}
        if self.config.hierarchical:
            if self.config.fdm:
                weights["shared"] = shared
            for m in self.kept:
                weights[m] = per_role[ROLES.index(self.role[m])]
        return weights

    # -- forward ---------------------------------------------------------------------------------
    def prepare(self, inputs: Mapping[str, torch.Tensor], lengths: Mapping[str, torch.Tensor]
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The kept modalities' rows cut to the longest row of the batch (every modality to the same
        length when the model's modalities share T, so the shared encoder runs once), standardised
        when configured and zero past each row's length: (B, T_b, D_m) each, with lengths (B,)
        clamped to 1..T_b. Nothing a valid step computes depends on the steps cut (causal windows
        and masks), so a batch's rows come out as they would at the full T."""
        steps = dict(zip(self.modalities, self.steps.tolist(), strict=True))
        kept_lengths = {}
        for m in self.kept:
            length = lengths[m].long().clamp_min(1)  # a row without steps (an invalid row) reads one zero step
            if bool((length > steps[m]).any()):
                raise UserError(f"dlf: {m} rows have up to {int(length.max())} steps, but the model was trained on "
                                f"{steps[m]}")
            kept_lengths[m] = length
        cut = {m: int(kept_lengths[m].max()) for m in self.kept}
        if len(set(steps.values())) == 1:
            cut = dict.fromkeys(self.kept, max(cut.values()))
        x = {}
        for m in self.kept:
            values = inputs[m][:, :cut[m]]
            if values.shape[1] < cut[m]:
                values = F.pad(values, (0, 0, 0, cut[m] - values.shape[1]))
            if self.config.standardize:
                values = (values - getattr(self.scaler, f"mean_{m}")) / getattr(self.scaler, f"scale_{m}")
            x[m] = values * step_mask(kept_lengths[m], cut[m])[:, :, None]  # (B, T_b, D_m), zero padding
        return x, kept_lengths

    def forward(self, inputs: Mapping[str, torch.Tensor], lengths: Mapping[str, torch.Tensor],
                with_losses: bool = False) -> Forward:
        """inputs: modality → (B, T_m, D_m); lengths: modality → (B,) → everything DLF computes
        (with the reconstruction and triplet features when ``with_losses``)."""
        c = self.config
        x, lengths = self.prepare(inputs, lengths)
        masks = {m: step_mask(lengths[m], x[m].shape[1]) for m in self.kept}
        projected, specific, shared = {}, {}, {}
        for m in self.kept:
            h = x[m]
            if self.role[m] == "L":
                h = dropout(h, c.text_dropout, self.training)  # the code's dropout on BERT's output
            # a causal window: k − 1 zeros on the left, so step t sees steps t−k+1..t, never padding
            h = F.pad(h.transpose(1, 2), (c.conv_kernel - 1, 0))  # (B, D_m, T_m + k − 1)
            projected[m] = self.project[m](h).transpose(1, 2)  # (B, T_m, d)
            specific[m] = self.specific[m](projected[m], lengths[m])  # (B, T_m, d)
        if c.fdm:
            shared = self.encode_shared(projected, lengths)
        high = {m: self.high[m](self.branch(m, specific, lengths)) for m in self.kept}  # (B, w_m)
        gated = [torch.sigmoid(self.gates[m](high[m])) for m in self.kept]  # (B, d) each
        shared_high = None
        if c.fdm:
            pooled = [last_step(self.shared_branch[m](shared[m], lengths[m]), lengths[m]) for m in self.kept]
            shared_high = self.shared_high(torch.cat(pooled, 1))  # (B, n·d)
            gated.append(torch.sigmoid(self.shared_gate(shared_high)))  # (B, n·d)
        fused = self.fusion(torch.cat(gated, 1))  # (B, width)
        heads = {}
        if c.hierarchical:
            heads = {m: self.heads[m](high[m]).squeeze(1) for m in self.kept}
            if c.fdm:
                heads["shared"] = self.shared_head(shared_high).squeeze(1)
        result = Forward(lengths, masks, projected, specific, shared, high, shared_high, fused,
                         self.output(fused).squeeze(1), heads)
        if with_losses and c.fdm:
            terms = self.loss_weights()
            if "recon" in terms or "specific" in terms:
                result.reconstructed = {m: self.decoders[m](torch.cat([specific[m], shared[m]], 2).transpose(1, 2))
                                        .transpose(1, 2) for m in self.kept}  # (B, T_m, d)
            if "specific" in terms:
                result.re_specific = {m: self.specific[m](result.reconstructed[m], lengths[m]) for m in self.kept}
            if "triplet" in terms:
                result.aligned = {m: self.align[m](self.flatten_shared(m, shared[m], masks[m])) for m in self.kept}
        return result

    def flatten_shared(self, m: str, shared: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sh_m flattened at the model's T_m with every step past a row's length zero:
        (B, T_b, d) → (B, T_m·d), the input of the triplet Linear."""
        steps = int(self.steps[self.modalities.index(m)])
        zeroed = shared * mask[:, :, None]  # (B, T_b, d)
        return F.pad(zeroed, (0, 0, 0, steps - shared.shape[1])).flatten(1)

    def encode_shared(self, projected: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
        """Sh_m = E^Sh(X̂_m) for every kept m: one pass over the stacked rows when the modalities
        share T (aligned data), else one per modality."""
        if len({projected[m].shape[1] for m in self.kept}) == 1 and len(self.kept) > 1:
            stacked = self.shared(torch.cat([projected[m] for m in self.kept]),
                                  torch.cat([lengths[m] for m in self.kept]))  # (n·B, T, d)
            return dict(zip(self.kept, stacked.chunk(len(self.kept)), strict=True))
        return {m: self.shared(projected[m], lengths[m]) for m in self.kept}

    def branch(self, m: str, specific: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last valid step of branch m's memory: (B, w_m). LFA: m = focus is focus → focus
        (self-attention memory); otherwise focus ← m, then the memory, on the focus's time axis."""
        sources = self.sources(m)
        query = self.focus if self.config.lfa else m
        if not sources:
            h = specific[m]  # (B, T_m, d)
        else:
            h = torch.cat([self.cross[self.cross_key(m, s)](specific[query], lengths[query], specific[s], lengths[s])
                           for s in sources], 2)  # (B, T_query, d·|sources|)
        return last_step(self.memory[m](h, lengths[query]), lengths[query])

    # -- objective -------------------------------------------------------------------------------
    def losses(self, out: Forward, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named loss terms and "total" (module docstring) for targets y (B,) in label units."""
        task_weights = self.task_weights()
        predictions = {"output": out.output, **out.heads}
        result = {"task": dlf_task_loss({k: predictions[k] for k in task_weights}, y, task_weights)}
        total = result["task"]
        weights = self.loss_weights()
        if "recon" in weights:
            result["recon"] = sum(masked_mse(out.reconstructed[m], out.projected[m], out.masks[m]) for m in self.kept)
        if "specific" in weights:
            result["specific"] = sum(masked_mse(out.specific[m], out.re_specific[m], out.masks[m]) for m in self.kept)
        if "triplet" in weights:
            features = torch.cat([out.aligned[m] for m in self.kept])  # (n·B, d), modality-major
            result["triplet"] = dlf_triplet_loss(features, y.repeat(len(self.kept)), self.config.triplet_margin)
        if "ortho" in weights:
            result["ortho"] = sum(soft_orthogonality_loss(out.specific[m], out.shared[m], out.masks[m],
                                                          self.config.ortho_chunk) for m in self.kept)
        for name, weight in weights.items():
            total = total + weight * result[name]
        return {**result, "total": total}

    # -- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, inputs: Mapping[str, torch.Tensor], lengths: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """ŷ for every row, in chunks (eval mode): (N,)."""
        self.eval()
        n = len(next(iter(inputs.values())))
        parts = [self({m: v[i:i + ROWS_PER_CHUNK] for m, v in inputs.items()},
                      {m: v[i:i + ROWS_PER_CHUNK] for m, v in lengths.items()}).output
                 for i in range(0, n, ROWS_PER_CHUNK)]
        return torch.cat(parts) if parts else torch.zeros(0)

    @torch.no_grad()
    def transform(self, inputs: Mapping[str, torch.Tensor],
                  lengths: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The components of every row of ``inputs`` (modality → (N, T_m, D_m)); ``lengths``
        (modality → (N,)) default to the zero padding's (`infer_lengths`)."""
        self.eval()
        if lengths is None:
            lengths = {m: infer_lengths(inputs[m]) for m in self.kept}
        n = len(next(iter(inputs.values())))
        chunks: dict[str, list[torch.Tensor]] = {}
        for start in range(0, n, ROWS_PER_CHUNK):
            rows = slice(start, start + ROWS_PER_CHUNK)
            out = self({m: inputs[m][rows] for m in self.kept}, {m: lengths[m][rows] for m in self.kept})
            for name, value in self.components_of(out).items():
                chunks.setdefault(name, []).append(value)
        return {name: torch.cat(values) for name, values in chunks.items()}

    def components_of(self, out: Forward) -> dict[str, torch.Tensor]:
        """Named components of one forward pass (module docstring), each (B, r)."""
        parts: dict[str, torch.Tensor] = {}
        if self.config.fdm:
            for m in self.kept:
                parts[components.shared_part(m)] = masked_mean(out.shared[m], out.masks[m])  # (B, d)
        for m in self.kept:
            parts[components.specific(m)] = masked_mean(out.specific[m], out.masks[m])  # (B, d)
        if self.config.fdm:
            parts[components.SHARED] = torch.stack([parts[components.shared_part(m)] for m in self.kept]).mean(0)
        for m in self.kept:
            parts[components.per_modality("lf", m)] = out.high[m]  # (B, w_m)
        parts[components.FUSED] = out.fused
        parts[PREDICTION] = out.output[:, None]  # (B, 1)
        return parts

    # -- checkpoint ------------------------------------------------------------------------------
    @classmethod
    def from_state(cls, config: DLFConfig, dims: Dims, state: dict[str, torch.Tensor]) -> DLF:
        steps = dict(zip(dims, (int(t) for t in state["steps"]), strict=True))
        model = cls(config, dims, steps)
        model.load_state_dict(state)
        return model

    # -- training --------------------------------------------------------------------------------
    @classmethod
    def fit(cls, data: MultimodalFeatures, config: DLFConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[DLF, dict[str, Any]]:
        cls.check_inputs(data.kinds)
        return DLFFit(cls, data, config, seed, progress).run()


@contextmanager
def cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """``threads`` intra-op threads for a CPU fit (one: `single_cpu_thread`), restored afterwards."""
    if threads == 1 or device.type != "cpu":
        with single_cpu_thread(device):
            yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class RegressionTarget:
    name: str
    values: torch.Tensor  # (N,) raw label values (NaN where missing)
    train_rows: torch.Tensor  # (n_train,) valid train rows with the label
    val_rows: torch.Tensor


def regression_target(data: MultimodalFeatures, requested: str | None, device: torch.device) -> RegressionTarget:
    """DLF's label, in its own units: ``requested``, else the one label declared ``sentiment``, else
    the dataset's joint label; it must be continuous. Only train and val rows are used here."""
    sentiment = [s.name for s in data.manifest.labels if s.scale == "sentiment"]
    name = requested if requested is not None else sentiment[0] if len(sentiment) == 1 \
        else target_name(data, None)
    spec = data.manifest.label(name)
    if spec.kind != "continuous":
        raise UserError(f"dlf regresses a continuous label, but {name} of {data.dataset} is {spec.kind}; choose one "
                        "with --set target=LABEL")
    values = pd.to_numeric(data.manifest.table[name], errors="coerce").to_numpy(dtype=np.float64)
    tensor = torch.tensor(values, dtype=torch.float32, device=device)
    observed = torch.isfinite(tensor)
    rows = {s: data.split_index[s][observed[data.split_index[s]]] for s in ("train", "val")}
    if len(rows["train"]) < 2 or len(rows["val"]) < 1:
        raise UserError(f"dlf: too few labelled train/val rows of {name} ({len(rows['train'])}, {len(rows['val'])})")
    return RegressionTarget(name, tensor, rows["train"], rows["val"])


class DLFFit:
    """One seed's fit: the data on the device, the model, and the MMSA schedule."""

    def __init__(self, cls: type[DLF], data: MultimodalFeatures, config: DLFConfig, seed: int,
                 progress: ProgressFn | None) -> None:
        self.started = time.perf_counter()
        self.config, self.progress = config, progress
        self.generator = seed_everything(seed)
        self.device = resolve_device(config.device)
        data = data.to(self.device)
        self.data = data
        self.target = regression_target(data, config.target, self.device)
        check_minibatch(cls.name, config.minibatch_size, len(self.target.train_rows),
                        f"{data.dataset} (rows labelled {self.target.name})")
        config.schedule().check(cls.name, len(self.target.train_rows))
        self.values = data.values  # modality -> (N, T_m, D_m), all rows
        self.lengths = {i.modality: i.lengths.long() for i in data.inputs}  # modality -> (N,)
        steps = {m: v.shape[1] for m, v in self.values.items()}
        self.model = cls(config, data.dims, steps).to(self.device)
        if config.standardize:
            self.model.scaler.fit({m: self.values[m][self.target.train_rows][
                step_mask(self.lengths[m][self.target.train_rows], steps[m])] for m in self.model.modalities})

    def rows(self, index: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return ({m: self.values[m][index] for m in self.model.kept},
                {m: self.lengths[m][index] for m in self.model.kept})

    def train_losses(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses on the train rows at ``index`` (B,) into the labelled train rows."""
        rows = self.target.train_rows[index]
        return self.model.losses(self.model(*self.rows(rows), with_losses=True), self.target.values[rows])

    def validation_l1(self) -> float:
        """The monitored value: mean |ŷ − y| over the labelled validation rows."""
        rows = self.target.val_rows
        prediction = self.model.predict(*self.rows(rows))
        return float((prediction - self.target.values[rows]).abs().mean())

    def run(self) -> tuple[DLF, dict[str, Any]]:
        model, config = self.model, self.config
        with cpu_threads(self.device, config.cpu_threads):
            history = train_accumulated(model, model.parameters(), self.train_losses, self.validation_l1,
                                        len(self.target.train_rows), config.schedule(), generator=self.generator,
                                        device=self.device, progress=self.progress, method=model.name)
        train_s = time.perf_counter() - self.started
        inferred = sum(int((infer_lengths(self.values[m][self.data.valid]) != self.lengths[m][self.data.valid]).sum())
                       for m in model.kept)
        # the same words for every seed: the protocol of a score names how it was made, not one run's epoch
        how = f"DLF's regression output ŷ of {self.target.name}, trained on train, the epoch of the best validation L1"
        record = {
            **history,
            "target": self.target.name,
            "loss_terms": ["task", *model.loss_weights()],
            "lengths_from_padding_mismatch": inferred,
            "n_params": sum(p.numel() for p in model.parameters()),
            "timings": {"train_s": train_s, "epoch_s": train_s / max(history["epochs"], 1)},
            **OwnPrediction(PREDICTION, self.target.name, how).history(),
        }
        return model, record

