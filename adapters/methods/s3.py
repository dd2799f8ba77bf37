"""S3: Specialization, Selection and Sparsification via mixture-of-experts (Choi & Kwak, "Toward
Structural Multimodal Representations: Specialization, Selection, and Sparsification via
Mixture-of-Experts", ICML 2026; no public code: this is a reference implementation from the paper
and /work/shared/references/s3-spec.md, which lists what the paper states and how each silence is read).

Model (§4, §6, App. G.2). One encoder per modality, two modalities (vision and text in the paper;
any two inputs here, sequences (N, T, D) with lengths, or pooled rows as one-step sequences):
`adapters/moe_transformer.py` — a bias-free input projection to width d_m, L = 5 post-norm
transformer layers (``heads`` = 5, dropout 0.1, ReLU, no positional encoding: MultiBench's
``Transformer`` backbone, which S3 follows) whose FFN is the MoE of `adapters/moe.py`: granularity
G (2, 4 or 8 in the paper; 8 by default, the setting of its Table 2), expansion E = 8, N_E = E·G
experts of hidden width d_ff / G, top-k = G, a bias-free linear router, softmax gates without
renormalisation. z_m is the pooled output of encoder m (the last valid step by default)::

    z_m = Enc_m(x_m)                                     (N, d_m)

Specialization (§5.1, Eq. 23–27; App. F), everything trains, router noise σ = ``router_noise``/N_E
on the logits (V-MoE)::

    L_spec = λ_intra Σ_m InfoNCE(z_m, z'_m) + λ_cross InfoNCE(z_1, z_2)
             + λ_aux mean_{m, layer} [w_imp CV²(Imp) + w_load CV²(load) + w_loc mean H(p) − w_glob H(p̄)]

with z'_m a second stochastic view (dropout and router noise; both views run as one batch of 2B
rows), symmetric cosine InfoNCE at temperature τ (`adapters/losses.py`), the four routing losses
over the valid tokens of both views of each layer and modality.

Selection (§5.2, Eq. 28–33): the attention, experts, projections and norms are frozen; only the
routers W_r of every layer and modality train, no router noise, on the task label (train rows;
the epoch is chosen on val)::

    L_sel = L_TS + β L_IM,  L_TS = mean of SupCon over 1→1, 2→2, 1→2, 2→1,
                            L_IM = mean of the vMF compactness over the same four pairs

Sparsification (§5.3), no training: per batch, per layer and per modality, the selected (token,
expert) pairs of the batch's valid tokens are ranked by gate and only the top ⌈ρ·n⌉ are computed,
ρ ∈ {1.0, 0.9, …, 0.1}; the residual path stays. The result depends on the batch, so the batches
are fixed: consecutive runs of ``sparsify_batch_size`` rows in the order the rows are given (the
manifest order under `mmpipe fit`), recorded in the run. ρ is chosen on validation: for every
component, a logistic-regression probe on the train rows (features standardised with train
statistics, C from ``probe_c_grid`` by val accuracy, as the evaluator's probe) scored on the val
rows of the task label; the ρ with the best val accuracy wins (ties: the larger ρ). Test labels are
never read here; the report picks the paper's test-best ρ (Table 2) from the stored components.

Components (`component_names`): ``spec``, ``sel``, ``rho90`` … ``rho10`` — [z_1, z_2] after
Specialization, after Selection (= ρ 1.0) and at each ρ (the Table 1 layout; columns per modality
in the record), then ``e_<k>`` (z_k at the ρ chosen on val) and ``fused`` = [e_1, e_2]. e_1 and e_2
are the vectors L_cross compares (and L_TS's cross-modal terms), so they are one space — the retrieval
pair — unless a loss head stands between them and the losses, or λ_cross = 0. The model
keeps the Specialization routers (buffers) so the checkpoint rebuilds every component. The record
(``history["s3"]``, `S3Summary`) holds the component of each stage, the val scores and chosen ρ,
the sparsification batches, the active-parameter fraction per ρ (Table 5: attention + kept
experts per token, router excluded, relative to ρ = 1), the router's share of all parameters
(Table 4), and per stage, modality and layer the expert usage and routing entropies.

Choices where the paper is silent, each a config field: widths d_m (``widths``; default 40 per
modality, FactorCL's width for MOSI vision, UR-FUNNY and MUStARD; FactorCL's MOSI text is 600),
d_ff = ``ffn_ratio``·d (4: "typically d_ff = 4d", §4.1; Table 5's ~34 % expert share would fit
ffn_ratio = 1 better), ``heads`` 5, ``dropout`` 0.1 (``attention_dropout`` 0: PyTorch's layer also
drops attention weights, which doubled the attention's cost), ``activation`` relu, ``pooling``
the last valid step (the reference reads the last *padded* step), inputs standardised per feature
with the train rows' valid steps (``standardize``), the second view of L_intra (dropout + router
noise, our reading of Eq. 25), τ = 0.07, λ_intra = λ_cross = 1, λ_aux = 0.01 and the four routing
weights 1 (``aux_weights``), σ = 1/N_E (V-MoE), the routing losses averaged over layers and
modalities, Adam with lr 1e-3 in both trained stages (``lr``, ``selection_lr``; FactorCL's 1e-4
had not converged after 60 steps where 1e-3 had a lower val loss after 16: tests/benchmarks/
s3_notes.md), batch 128, epoch caps 100 (Specialization) and 20 (Selection: a MOSI-size fit's
time budget; its val loss was still falling at 50) unless the val loss plateaus for ``patience`` 5
epochs (the best val epoch of each stage is kept), β = 1, no router noise in Selection
(``selection_router_noise``), a continuous task label binarised as y ≥ ``binarize_at`` (0:
FactorCL's ``mosi_label``), a linear loss head per modality only when the widths differ
(``loss_head``: the cross-modal terms compare z_1 with z_2), Sparsification batches of
``sparsify_batch_size`` 128 rows, ρ chosen by the probe above (``probe_c_grid``). Sequence lengths
come with the inputs (`transform`'s ``lengths``); without them they are read from the store's zero
padding (`infer_lengths`), and the record counts the valid rows where that would differ.
Ablations (Table 3, Fig. 6): ``selection_losses`` = ts / im / none (none: Sparsification right
after Specialization); the granularity G by ``granularity``.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.base import AdapterMethod, Dims, InputScaler, ProgressFn, RetrievalPair
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.losses import (
    cross_modal_info_nce,
    global_entropy_loss,
    importance_loss,
    information_minimality_loss,
    intra_modal_info_nce,
    load_loss,
    local_entropy_loss,
    task_sufficiency_loss,
)
from mmpipe.adapters.moe import MoEFeedForward, Routing
from mmpipe.adapters.moe_transformer import EncoderShape, MoESequenceEncoder
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.staged import EpochContext, Stage, StagedTrainer
from mmpipe.adapters.targets import target_name
from mmpipe.adapters.training import check_minibatch, resolve_device, seed_everything, single_cpu_thread
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import (
    DEVICE,
    EPOCHS,
    FINITE,
    MAX_EPOCHS,
    NON_NEGATIVE,
    POSITIVE,
    WIDTH,
    Between,
    Checked,
    Length,
    between,
)

RHOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)  # the paper's preservation ratios
DEFAULT_WIDTH = 40
AUX_NAMES = ("importance", "load", "local_entropy", "global_entropy")
VAL_SEED = 12345  # the fixed noise of the stochastic validation views (the same draw every epoch)


def rho_component(rho: float) -> str:
    """The component of preservation ratio ρ: ``sel`` for ρ = 1 (nothing pruned), else rho90 …"""
    return "sel" if rho == 1.0 else f"rho{round(rho * 100):d}"


STAGE_COMPONENTS = ("spec", *(rho_component(r) for r in RHOS))


@dataclass(frozen=True)
class S3Config(Checked):
    # widths d_m, one per modality in the method's order; None: DEFAULT_WIDTH each
    widths: Annotated[tuple[int, ...] | None, WIDTH, Length(2)] = None
    ffn_ratio: Annotated[int, between(1, 64)] = 4  # d_ff = ffn_ratio · d
    layers: Annotated[int, between(1, 64)] = 5  # MoE transformer layers per modality
    heads: Annotated[int, between(1, 64)] = 5  # divides every width
    dropout: Annotated[float, Between(0, 1, high_open=True)] = 0.1
    # PyTorch's layer also drops attention weights (0.1); off by default: it doubled the attention's cost
    attention_dropout: Annotated[float, Between(0, 1, high_open=True)] = 0.0
    activation: Literal["relu", "gelu"] = "relu"
    granularity: Annotated[int, between(1, 64)] = 8  # G; divides d_ff
    expansion: Annotated[int, between(1, 64)] = 8  # E; N_E = E·G experts
    top_k: Annotated[int | None, between(1, 4096)] = None  # None: G (the paper's choice)
    router_noise: Annotated[float, NON_NEGATIVE] = 1.0  # σ = router_noise / N_E, Specialization only
    selection_router_noise: bool = False  # router noise in Selection too
    pooling: Literal["last", "mean"] = "last"  # a sequence's vector: its last valid step, or the mean
    standardize: bool = True
    loss_head: Literal["auto", "linear", "none"] = "auto"  # auto: linear iff the widths differ
    temperature: Annotated[float, POSITIVE] = 0.07
    intra_weight: Annotated[float, NON_NEGATIVE] = 1.0  # λ_intra, weight of the within-modality InfoNCE
    cross_weight: Annotated[float, NON_NEGATIVE] = 1.0  # λ_cross, weight of the cross-modal InfoNCE
    aux_weight: Annotated[float, NON_NEGATIVE] = 0.01  # λ_aux, weight of the routing losses
    # importance, load, local entropy, global entropy
    aux_weights: Annotated[tuple[float, ...], NON_NEGATIVE, Length(4)] = (1.0, 1.0, 1.0, 1.0)
    # Selection's losses: L_TS + β L_IM, one of them, or no Selection
    selection_losses: Literal["both", "ts", "im", "none"] = "both"
    beta: Annotated[float, NON_NEGATIVE] = 1.0  # β, weight of L_IM in Selection
    target: str | None = None  # None: the dataset's joint label
    binarize_at: Annotated[float, FINITE] = 0.0  # a continuous label's class is y >= binarize_at
    lr: Annotated[float, POSITIVE] = 1e-3
    selection_lr: Annotated[float, POSITIVE] = 1e-3  # learning rate of Selection (the routers)
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.0
    # not "batch_size": fingerprints drop that name, and here it shapes the result; at most the train rows
    minibatch_size: Annotated[int, between(2, 2**20)] = 128
    max_epochs_specialization: Annotated[int, EPOCHS] = 100  # epoch cap of Specialization
    max_epochs_selection: Annotated[int, between(0, MAX_EPOCHS)] = 20  # 0: no Selection
    patience: Annotated[int, EPOCHS] = 5
    min_rel_improvement: Annotated[float, NON_NEGATIVE] = 1e-3
    sparsify_batch_size: Annotated[int, between(1, 2**20)] = 128  # rows per Sparsification batch
    # C values of the val probe that chooses ρ
    probe_c_grid: Annotated[tuple[float, ...], POSITIVE, Length(1, None)] = (0.01, 0.1, 1.0, 10.0, 100.0)
    device: Annotated[str, DEVICE] = "auto"

    def check(self) -> None:
        widths = self.widths or (DEFAULT_WIDTH, DEFAULT_WIDTH)
        for width in widths:
            if width % self.heads:
                raise UserError(f"s3: heads={self.heads} must divide every width ({', '.join(map(str, widths))})")
            if (self.ffn_ratio * width) % self.granularity:
                raise UserError(f"s3: granularity={self.granularity} must divide d_ff = ffn_ratio·width = "
                                f"{self.ffn_ratio * width}")
        if self.top_k is not None and self.top_k > self.granularity * self.expansion:
            raise UserError(f"s3: top_k={self.top_k} exceeds the {self.granularity * self.expansion} experts "
                            "(granularity · expansion)")
        if self.loss_head == "none" and len(set(widths)) > 1:
            raise UserError(f"s3: loss_head=none needs equal widths, got {', '.join(map(str, widths))} "
                            "(the cross-modal losses compare z_1 with z_2)")
        if self.router_noise == 0 and self.aux_weight > 0 and self.aux_weights[1] > 0:
            raise UserError("s3: the load loss needs router noise: set router_noise > 0, or aux_weights with a "
                            "load weight of 0")

    @property
    def n_experts(self) -> int:
        return self.granularity * self.expansion

    @property
    def uses_loss_head(self) -> bool:
        """A linear loss head per modality: asked for, or (``auto``) because the widths differ."""
        widths = self.widths or (DEFAULT_WIDTH, DEFAULT_WIDTH)
        return self.loss_head == "linear" or (self.loss_head == "auto" and len(set(widths)) > 1)


# -- the record ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRouting:
    """One layer of one modality in one stage, over the valid tokens of every row transformed."""

    layer: int
    tokens: int
    usage: list[float]  # share of the selected (token, expert) pairs taken by each expert (sums to 1)
    local_entropy: float  # mean over tokens of H(p(x)), nats
    global_entropy: float  # H(mean over tokens of p(x)), nats


@dataclass(frozen=True)
class S3Summary:
    """What S3 stores in ``history["s3"]`` for the report (Tables 1–5, Figures 3–10)."""

    stage_components: dict[str, str]  # "specialization" / "selection" / "rho=0.9" … → component name
    columns: dict[str, list[int]]  # modality → [start, stop) of its z in every stage component
    rhos: list[float]
    rho_val: float  # ρ chosen on validation
    rho_val_component: str
    val_accuracy: dict[str, float]  # stage component → val accuracy of the probe
    rho_choice: str  # how rho_val was chosen, in words
    sparsify_batch_size: int
    sparsify_order: str
    active_fraction: dict[str, float]  # "0.9" … → active parameters per token relative to ρ = 1 (both encoders)
    active_fraction_by_modality: dict[str, dict[str, float]]  # modality → "0.9" … → fraction
    kept_pairs: dict[str, dict[str, list[int]]]  # modality → "0.9" … → kept pairs per layer
    router_share: float  # router parameters / all parameters (Table 4)
    n_router_params: int
    n_params: int
    routing: dict[str, dict[str, list[LayerRouting]]]  # "specialization" / "selection" → modality → layers
    target: dict[str, Any]  # name, kind, classes, binarize_at
    selection_losses: str
    best_epochs: dict[str, int]  # stage → the epoch whose weights were kept
    lengths_from_padding_mismatch: int  # valid rows whose zero-padding length differs from the stored one

    @classmethod
    def from_history(cls, history: Mapping[str, Any]) -> S3Summary:
        """Read back a run record's ``history["s3"]``."""
        data = dict(history["s3"])
        data["routing"] = {stage: {m: [LayerRouting(**layer) for layer in layers] for m, layers in per.items()}
                           for stage, per in data["routing"].items()}
        return cls(**data)


# -- inputs ----------------------------------------------------------------------------------------
def infer_lengths(values: torch.Tensor) -> torch.Tensor:
    """Lengths of end-padded sequences whose padding is exactly zero (the store writes zeros past
    each row's length): 1 + the last step with a nonzero feature, 0 for an all-zero row.
    values (N, T, D) → (N,) long. A row whose true last steps are all zero reads shorter."""
    nonzero = values.ne(0).any(-1)  # (N, T)
    steps = torch.arange(1, values.shape[1] + 1, device=values.device)
    return (nonzero * steps).amax(1).long()


def as_sequences(values: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, D) values with (N,) lengths; pooled rows (N, D) become one-step sequences; missing
    lengths are read from the zero padding (`infer_lengths`)."""
    if values.ndim == 2:
        return values[:, None, :], torch.ones(len(values), dtype=torch.long, device=values.device)
    return values, (infer_lengths(values) if lengths is None else lengths.long())


@dataclass(frozen=True)
class ClassTarget:
    """The task label of Selection (and of the ρ choice) as classes, train and val rows only."""

    name: str
    kind: str
    classes: list[str]
    binarize_at: float | None
    train_rows: torch.Tensor  # (n_train,) row indices into the data
    train_y: torch.Tensor  # (n_train,) long
    val_rows: torch.Tensor
    val_y: torch.Tensor


def class_target(data: MultimodalFeatures, requested: str | None, binarize_at: float,
                 device: torch.device) -> ClassTarget:
    """The label ``requested`` (None: the dataset's joint label) on the valid train and val rows:
    categorical codes (sorted classes), or a continuous label binarised as y >= ``binarize_at``.
    Rows without a label are left out; test labels are never read."""
    name = target_name(data, requested)
    spec = data.manifest.label(name)
    column = data.manifest.table[name]
    if spec.kind == "categorical":
        codes, uniques = pd.factorize(column, sort=True)
        observed, values, classes, threshold = codes >= 0, codes.astype(np.int64), [str(u) for u in uniques], None
    else:
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        observed = np.isfinite(numbers)
        values = (np.nan_to_num(numbers, nan=-np.inf) >= binarize_at).astype(np.int64)
        classes, threshold = [f"< {binarize_at:g}", f">= {binarize_at:g}"], binarize_at
    rows = {}
    for split in ("train", "val"):
        index = data.split_index[split].cpu().numpy()
        rows[split] = index[observed[index]]
    if len(np.unique(values[rows["train"]])) < 2 or len(rows["val"]) < 1:
        raise UserError(f"s3: the task label {name} needs two classes among the labelled train rows and a "
                        f"labelled val row (train {len(rows['train'])}, val {len(rows['val'])})")

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    return ClassTarget(name, spec.kind, classes, threshold, tensor(rows["train"]), tensor(values[rows["train"]]),
                       tensor(rows["val"]), tensor(values[rows["val"]]))


def probe_accuracy(features: torch.Tensor, target: ClassTarget, c_grid: tuple[float, ...]) -> float:
    """Val accuracy of the best (by val accuracy) logistic-regression probe fitted on the train rows
    of ``target``, features standardised with train statistics. features: (N, r), all rows."""
    from sklearn.linear_model import LogisticRegression  # imported only when a fit ends
    from threadpoolctl import threadpool_limits

    x = features.detach().cpu().double().numpy()
    train, val = target.train_rows.cpu().numpy(), target.val_rows.cpu().numpy()
    mean, std = x[train].mean(0), x[train].std(0)
    std[std < 1e-12] = 1.0
    x_train, x_val = (x[train] - mean) / std, (x[val] - mean) / std
    y_train, y_val = target.train_y.cpu().numpy(), target.val_y.cpu().numpy()
    best = 0.0
    # one BLAS thread: the probes are small, and extra threads only spin on a shared machine
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # a probe that stops at max_iter is still a probe
        for c in c_grid:
            probe = LogisticRegression(C=c, max_iter=500).fit(x_train, y_train)
            best = max(best, float((probe.predict(x_val) == y_val).mean()))
    return best


# -- the model -------------------------------------------------------------------------------------
@dataclass
class RoutingTally:
    """Running sums over the calls of one pass (one stage or ρ), per modality and layer."""

    tokens: torch.Tensor  # (L,)
    kept: torch.Tensor  # (L,) kept (token, expert) pairs
    usage: torch.Tensor  # (L, N_E) kept pairs per expert
    probs: torch.Tensor  # (L, N_E) Σ p(x)
    local_entropy: torch.Tensor  # (L,) Σ H(p(x))

    @classmethod
    def zeros(cls, layers: int, experts: int) -> RoutingTally:
        z = torch.zeros
        return cls(z(layers), z(layers), z(layers, experts), z(layers, experts), z(layers))

    @torch.no_grad()
    def add(self, routings: list[Routing]) -> None:
        for i, r in enumerate(routings):
            self.tokens[i] += len(r.probs)
            self.kept[i] += float(r.kept.sum())
            self.usage[i] += torch.bincount(r.experts[r.kept], minlength=self.usage.shape[1]).float().cpu()
            self.probs[i] += r.probs.sum(0).cpu()
            self.local_entropy[i] += float(-(r.probs * r.probs.clamp_min(1e-30).log()).sum())

    def layers(self) -> list[LayerRouting]:
        result = []
        for i in range(len(self.tokens)):
            n = max(float(self.tokens[i]), 1.0)
            mean = self.probs[i] / n
            result.append(LayerRouting(i, int(self.tokens[i]), (self.usage[i] / self.usage[i].sum().clamp_min(1)).tolist(),
                                       float(self.local_entropy[i]) / n,
                                       float(-(mean * mean.clamp_min(1e-30).log()).sum())))
        return result


@METHODS.register("s3")
class S3(AdapterMethod):
    name = "s3"
    description = ("S3: MoE transformer per modality; Specialization (InfoNCE + routing losses), router-only "
                   "Selection (SupCon + vMF compactness), inference-time Sparsification over ρ")
    Config = S3Config
    modality_count = (2, 2)
    input_kinds = frozenset({"pooled", "sequence"})
    ablation_fields = frozenset({"selection_losses"})

    def __init__(self, config: S3Config, dims: Dims) -> None:
        super().__init__()
        if len(dims) != 2:
            raise UserError(f"s3 takes exactly 2 modalities, got {len(dims)} ({', '.join(dims)})")
        self.config = config
        self.modalities: tuple[str, str] = tuple(dims)  # type: ignore[assignment]
        self.widths = dict(zip(self.modalities, config.widths or (DEFAULT_WIDTH, DEFAULT_WIDTH), strict=True))
        self.scaler = InputScaler(dims)
        self.encoders = nn.ModuleDict({m: MoESequenceEncoder(EncoderShape(
            dims[m], d, config.layers, config.heads, config.ffn_ratio * d, config.granularity, config.expansion,
            config.top_k, config.activation, config.dropout, config.attention_dropout, config.pooling)) for m, d in self.widths.items()})
        latent = min(self.widths.values())
        self.loss_heads = nn.ModuleDict({m: nn.Linear(d, latent, bias=False) for m, d in self.widths.items()}) \
            if config.uses_loss_head else None
        # the routers as Specialization left them: Selection changes only the routers, so these
        # buffers are all that is needed to rebuild the Specialization components from the checkpoint
        for m in self.modalities:
            for i, weight in enumerate(self.encoders[m].routers()):
                self.register_buffer(self._spec_router(m, i), weight.detach().clone())
        # the preservation ratio chosen on validation, as its index in RHOS (exact, unlike a float32 ρ)
        self.register_buffer("rho_index", torch.tensor(0))

    @property
    def chosen_rho(self) -> float:
        return RHOS[int(self.rho_index)]

    @staticmethod
    def _spec_router(modality: str, layer: int) -> str:
        return f"spec_router_{modality}_{layer}"

    def specialization_routers(self, modality: str) -> list[torch.Tensor]:
        return [getattr(self, self._spec_router(modality, i)) for i in range(self.config.layers)]

    @torch.no_grad()
    def keep_specialization_routers(self) -> None:
        for m in self.modalities:
            for i, weight in enumerate(self.encoders[m].routers()):
                getattr(self, self._spec_router(m, i)).copy_(weight)

    def routers(self) -> list[nn.Parameter]:
        return [w for m in self.modalities for w in self.encoders[m].routers()]

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return (*STAGE_COMPONENTS, *(components.per_modality("e", m) for m in modalities), components.FUSED)

    @classmethod
    def retrieval_pairs(cls, modalities: tuple[str, ...], config: S3Config) -> tuple[RetrievalPair, ...]:
        if config.uses_loss_head or config.cross_weight == 0:
            return ()
        first, second = modalities[:2]
        return (RetrievalPair((first, second), (components.per_modality("e", first), components.per_modality("e", second))),)

    @classmethod
    def ablation(cls, config: S3Config) -> str | None:
        return {"both": None, "ts": "Selection: L_TS only", "im": "Selection: L_IM only",
                "none": "no Selection"}[config.selection_losses]

    # -- forward -------------------------------------------------------------------------------
    def encode(self, modality: str, x: torch.Tensor, lengths: torch.Tensor, noise_std: float = 0.0,
               routers: str = "current", keep: float = 1.0) -> tuple[torch.Tensor, list[Routing]]:
        """Standardised rows x (B, T, D) with lengths (B,) in 1..T → z (B, d_m) and the routings."""
        weights = self.specialization_routers(modality) if routers == "specialization" else None
        return self.encoders[modality](x, lengths, noise_std, weights, keep)

    def loss_space(self, modality: str, z: torch.Tensor) -> torch.Tensor:
        """z in the space the losses compare (the loss head's output when the widths differ)."""
        return z if self.loss_heads is None else self.loss_heads[modality](z)

    @torch.no_grad()
    def transform(self, inputs: Mapping[str, torch.Tensor],
                  lengths: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The components of every row of ``inputs`` (modality → (N, T, D) or (N, D)); ``lengths``
        (modality → (N,)) default to the zero padding's (`infer_lengths`)."""
        return self.sweep(inputs, lengths)[0]

    @torch.no_grad()
    def sweep(self, inputs: Mapping[str, torch.Tensor], lengths: Mapping[str, torch.Tensor] | None = None
              ) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, RoutingTally]]]:
        """Every component, and the routing tallies of each pass (component → modality → tally).

        Rows are taken in the order given, in batches of ``sparsify_batch_size`` rows; a row with no
        step in a modality gives z = 0 there (it is an invalid row)."""
        with single_cpu_thread(self.rho_index.device):
            return self._sweep(inputs, lengths)

    def _sweep(self, inputs: Mapping[str, torch.Tensor], lengths: Mapping[str, torch.Tensor] | None
               ) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, RoutingTally]]]:
        self.eval()
        sequences = {m: as_sequences(inputs[m], None if lengths is None else lengths.get(m)) for m in self.modalities}
        scaled = self.scaler({m: v for m, (v, _) in sequences.items()})
        n = len(next(iter(sequences.values()))[0])
        size = self.config.sparsify_batch_size
        passes = [("spec", "specialization", 1.0)] + [(rho_component(r), "current", r) for r in RHOS]
        out: dict[str, torch.Tensor] = {}
        tallies: dict[str, dict[str, RoutingTally]] = {}
        experts = self.config.n_experts
        for name, routers, keep in passes:
            tallies[name] = {m: RoutingTally.zeros(self.config.layers, experts) for m in self.modalities}
            parts = []
            for m in self.modalities:
                values, steps = scaled[m], sequences[m][1]
                z = values.new_zeros(n, self.widths[m])
                for start in range(0, n, size):
                    rows = torch.arange(start, min(start + size, n), device=values.device)
                    rows = rows[steps[rows] > 0]
                    if len(rows) == 0:
                        continue
                    longest = int(steps[rows].max())
                    z_rows, routings = self.encode(m, values[rows, :longest], steps[rows], 0.0, routers, keep)
                    z[rows] = z_rows
                    tallies[name][m].add(routings)
                parts.append(z)
            out[name] = torch.cat(parts, 1)  # (N, d_1 + d_2)
        chosen = out[rho_component(self.chosen_rho)]
        first = self.widths[self.modalities[0]]
        out[components.per_modality("e", self.modalities[0])] = chosen[:, :first]
        out[components.per_modality("e", self.modalities[1])] = chosen[:, first:]
        out[components.FUSED] = chosen
        return out, tallies

    # -- objectives ----------------------------------------------------------------------------
    def specialization_objective(self, batches: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
                                 ) -> dict[str, torch.Tensor]:
        """L_spec and its parts for standardised batches (modality → (x (B, T, D), lengths (B,))):
        both views of a modality run as one batch of 2B rows (independent dropout and router
        noise per row); the routing losses are over the valid tokens of both views."""
        c = self.config
        noise_std = c.router_noise / c.n_experts
        views, aux = [], None
        for m in self.modalities:
            x, lengths = batches[m]
            b = len(x)
            z, routings = self.encode(m, torch.cat([x, x]), torch.cat([lengths, lengths]), noise_std)
            z = self.loss_space(m, z)  # (2B, r)
            views.append((z[:b], z[b:]))
            for r in routings:
                parts = torch.stack([importance_loss(r.probs),
                                     load_loss(r.logits, r.noisy_logits, r.experts.shape[1], r.noise_std,
                                               MoEFeedForward.threshold(r))
                                     if r.noisy_logits is not None else r.probs.sum() * 0.0,
                                     local_entropy_loss(r.probs), global_entropy_loss(r.probs)])
                aux = parts if aux is None else aux + parts
        aux = aux / (len(self.modalities) * c.layers)  # (4,) mean over layers and modalities
        weights = torch.tensor(c.aux_weights, device=aux.device)
        intra = intra_modal_info_nce(views, c.temperature)
        cross = cross_modal_info_nce(views[0][0], views[1][0], c.temperature)
        total_aux = (weights * aux).sum()
        spec = c.intra_weight * intra + c.cross_weight * cross + c.aux_weight * total_aux
        return {"spec": spec, "intra": intra, "cross": cross, "aux": total_aux,
                **dict(zip(AUX_NAMES, aux.unbind(), strict=True))}

    def selection_objective(self, batches: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                            labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_sel = L_TS + β L_IM (or one of them, ``selection_losses``) with its parts, for
        standardised batches and their classes (B,); the routing entropies are monitored only
        (App. H.1), never trained on in Selection."""
        c = self.config
        noise = c.router_noise / c.n_experts if c.selection_router_noise else 0.0
        z, entropies = [], None
        for m in self.modalities:
            x, lengths = batches[m]
            z_m, routings = self.encode(m, x, lengths, noise)
            z.append(self.loss_space(m, z_m))
            for r in routings:
                parts = torch.stack([local_entropy_loss(r.probs), global_entropy_loss(r.probs)]).detach()
                entropies = parts if entropies is None else entropies + parts
        entropies = entropies / (len(self.modalities) * c.layers)
        ts = task_sufficiency_loss(z[0], z[1], labels, c.temperature)
        im = information_minimality_loss(z[0], z[1], labels)
        use_ts, use_im = c.selection_losses in ("both", "ts"), c.selection_losses in ("both", "im")
        sel = (ts if use_ts else 0.0) + (c.beta * im if use_im else 0.0)
        return {"sel": sel, "ts": ts, "im": im, "local_entropy": entropies[0], "global_entropy": entropies[1]}

    def objective(self, data: MultimodalFeatures, rows: torch.Tensor,
                  labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The Specialization losses (or, with ``labels`` (B,), the Selection losses) on ``rows`` of
        ``data``'s raw features, standardised by the model (for checks outside a fit)."""
        raw, steps = {}, {}
        for item in data.inputs:
            values, lengths = as_sequences(item.values[rows], None if item.lengths is None else item.lengths[rows])
            raw[item.modality], steps[item.modality] = values[:, :int(lengths.max())], lengths
        scaled = self.scaler(raw)
        batches = {m: (scaled[m], steps[m]) for m in self.modalities}
        return self.specialization_objective(batches) if labels is None else self.selection_objective(batches, labels)

    # -- parameters ----------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        n_params = sum(p.numel() for p in self.parameters())
        n_router = sum(w.numel() for w in self.routers())
        return {"n_params": n_params, "n_router_params": n_router}

    def active_parameters(self, modality: str, tally: RoutingTally) -> float:
        """Σ over layers of (tokens · attention parameters + kept pairs · expert parameters): the
        parameters that transform tokens (router excluded, as in the paper's count)."""
        total = 0.0
        for i, layer in enumerate(self.encoders[modality].layers):
            total += float(tally.tokens[i]) * layer.attention_parameters()
            total += float(tally.kept[i]) * layer.moe.expert_parameters()
        return total

    # -- checkpoint ----------------------------------------------------------------------------
    @classmethod
    def from_state(cls, config: S3Config, dims: Dims, state: dict[str, torch.Tensor]) -> S3:
        model = cls(config, dims)
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, data: MultimodalFeatures, config: S3Config, seed: int,
            progress: ProgressFn | None = None) -> tuple[S3, dict[str, Any]]:
        cls.check_inputs(data.kinds)
        return Schedule(cls, data, config, seed, progress).run()


# -- training --------------------------------------------------------------------------------------
class KeepBest:
    """An after-epoch hook: snapshot the stage's parameters whenever its val loss improves, so the
    stage can end on its best val epoch (`restore`)."""

    def __init__(self, loss: str, parameters: list[nn.Parameter]) -> None:
        self.loss, self.parameters = loss, parameters
        self.best, self.epoch = float("inf"), 0
        self.saved: list[torch.Tensor] = []

    def __call__(self, context: EpochContext) -> None:
        value = context.val[self.loss]
        if value < self.best:
            self.best, self.epoch = value, context.epoch
            self.saved = [p.detach().clone() for p in self.parameters]

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in zip(self.parameters, self.saved, strict=True):
            p.copy_(saved)


class Schedule:
    """S3's three stages on the shared staged trainer (module docstring)."""

    def __init__(self, cls: type[S3], data: MultimodalFeatures, config: S3Config, seed: int,
                 progress: ProgressFn | None) -> None:
        if config.widths is not None and len(config.widths) != len(data.modalities):
            raise UserError(f"s3: widths has {len(config.widths)} values for {len(data.modalities)} modalities")
        check_minibatch(cls.name, config.minibatch_size, len(data.split_index["train"]), data.dataset)
        self.config, self.progress = config, progress or (lambda message: None)
        self.generator = seed_everything(seed)
        self.device = resolve_device(config.device)
        self.data = data.to(self.device)
        self.target = class_target(self.data, config.target, config.binarize_at, self.device)
        self.model = cls(config, self.data.dims).to(self.device)
        self.modalities = self.model.modalities
        stored = {i.modality: i.lengths for i in self.data.inputs}
        self.sequences = {m: as_sequences(self.data.values[m], stored[m]) for m in self.modalities}
        self.train_rows = self.data.split_index["train"]
        if config.standardize:
            self.model.scaler.fit({m: self._steps(m, self.train_rows) for m in self.modalities})
        self.scaled = self.model.scaler({m: v for m, (v, _) in self.sequences.items()})  # modality -> (N, T, D)
        self.stage = "specialization"
        self.trainer = StagedTrainer(self.model, train_losses=self.train_losses,
                                     validation_losses=self.validation_losses, n_train=len(self.train_rows),
                                     batch_size=config.minibatch_size, generator=self.generator, device=self.device,
                                     progress=self.progress)

    def _steps(self, modality: str, rows: torch.Tensor) -> torch.Tensor:
        """The valid steps of ``rows``, (n_steps, D): what the standardisation is fitted on."""
        values, lengths = self.sequences[modality]
        mask = torch.arange(values.shape[1], device=values.device)[None, :] < lengths[rows][:, None]
        return values[rows][mask]

    def batch(self, modality: str, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised (B, T_b, D) rows cut to their longest valid length, and their lengths (B,)."""
        lengths = self.sequences[modality][1][rows]
        return self.scaled[modality][rows, :int(lengths.max())], lengths

    # -- losses --------------------------------------------------------------------------------
    def specialization_losses(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.specialization_objective({m: self.batch(m, rows) for m in self.modalities})

    def selection_losses(self, rows: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.selection_objective({m: self.batch(m, rows) for m in self.modalities}, labels)

    def train_losses(self, index: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        if self.stage == "specialization":
            return self.specialization_losses(self.train_rows[index])
        return self.selection_losses(self.target.train_rows[index], self.target.train_y[index])

    def _val_batches(self, n: int) -> Iterator[slice]:
        """Full batches of the val rows (one batch of all of them when fewer than a minibatch)."""
        size = self.config.minibatch_size
        if n <= size:
            yield slice(0, n)
            return
        for start in range(0, n - size + 1, size):
            yield slice(start, start + size)

    @torch.no_grad()
    def validation_losses(self) -> dict[str, float]:
        """The stage's losses on the val rows, averaged over full batches. Specialization's views
        are stochastic, so they are drawn in train mode from a fixed seed: every epoch sees the
        same noise, and the training RNG stream is untouched."""
        totals: dict[str, float] = {}
        if self.stage == "specialization":
            rows_all, labels_all = self.data.split_index["val"], None
        else:
            rows_all, labels_all = self.target.val_rows, self.target.val_y
        batches = list(self._val_batches(len(rows_all)))
        cuda = [torch.cuda.current_device()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(VAL_SEED)
            self.model.train(self.stage == "specialization")
            for part in batches:
                if labels_all is None:
                    values = self.specialization_losses(rows_all[part])
                else:
                    values = self.selection_losses(rows_all[part], labels_all[part])
                for k, v in values.items():
                    totals[k] = totals.get(k, 0.0) + float(v) / len(batches)
        self.model.eval()
        return totals

    # -- stages --------------------------------------------------------------------------------
    def run_stage(self, name: str, loss: str, parameters: list[nn.Parameter], lr: float, max_epochs: int) -> int:
        """Train ``parameters`` on ``loss`` until the plateau or the cap; keep the best val epoch."""
        c = self.config
        keep = KeepBest(loss, parameters)
        stage = Stage(name, (loss,) if max_epochs > 0 else (),
                      lambda: torch.optim.Adam(parameters, lr=lr, weight_decay=c.weight_decay, foreach=True),
                      patience=c.patience, max_epochs=max(max_epochs, 1), min_rel_improvement=c.min_rel_improvement,
                      after_epoch=(keep,))
        self.trainer.run([stage])
        if keep.saved:
            keep.restore()
        return keep.epoch

    def run(self) -> tuple[S3, dict[str, Any]]:
        c, model = self.config, self.model
        started = time.perf_counter()
        timings: dict[str, float] = {}
        best_epochs: dict[str, int] = {}
        with single_cpu_thread(self.device):
            self.stage = "specialization"
            best_epochs["specialization"] = self.run_stage("specialization", "spec", list(model.parameters()), c.lr,
                                                           c.max_epochs_specialization)
            model.keep_specialization_routers()
            timings["specialization_s"] = time.perf_counter() - started

            selection_started = time.perf_counter()
            self.stage = "selection"
            routers = model.routers()
            ids = {id(w) for w in routers}
            for p in model.parameters():
                p.requires_grad_(id(p) in ids)
            self.trainer.n_train = len(self.target.train_rows)
            epochs = 0 if c.selection_losses == "none" else c.max_epochs_selection
            best_epochs["selection"] = self.run_stage("selection", "sel", routers, c.selection_lr, epochs)
            model.requires_grad_(True)
            timings["selection_s"] = time.perf_counter() - selection_started

            sparsify_started = time.perf_counter()
            summary = self.sparsify(best_epochs)
            timings["sparsification_s"] = time.perf_counter() - sparsify_started
        history = self.trainer.history
        history.stages.append({"stage": "sparsification", "start_epoch": history.n_epochs,
                               "end_epoch": history.n_epochs, "reason": "no training: inference-time pruning",
                               "rhos": list(RHOS), "rho_val": summary.rho_val,
                               "batch_size": c.sparsify_batch_size})
        timings["train_s"] = time.perf_counter() - started
        model.eval()
        return model, {
            "stage_history": history.stages,
            "epoch_history": history.epochs,
            "curves": history.curves.rows(),
            "epochs": history.n_epochs,
            "timings": timings,
            "n_params": summary.n_params,
            "s3": dataclasses.asdict(summary),
        }

    def sparsify(self, best_epochs: dict[str, int]) -> S3Summary:
        """Every component over all rows (the batches `transform` uses), the ρ chosen on val, and
        the record."""
        model, c = self.model, self.config
        values = {m: v for m, (v, _) in self.sequences.items()}
        lengths = {m: steps for m, (_, steps) in self.sequences.items()}
        parts, tallies = model.sweep(values, lengths)
        val = {name: probe_accuracy(parts[name], self.target, c.probe_c_grid) for name in STAGE_COMPONENTS}
        rho_val = max(RHOS, key=lambda r: (val[rho_component(r)], r))
        model.rho_index.fill_(RHOS.index(rho_val))
        self.progress(f"sparsification: val accuracy {' '.join(f'{k}={v:.3f}' for k, v in val.items())}; "
                      f"rho chosen on val = {rho_val}")
        full = {m: model.active_parameters(m, tallies["sel"][m]) for m in self.modalities}
        by_modality = {m: {str(r): model.active_parameters(m, tallies[rho_component(r)][m]) / full[m] for r in RHOS}
                       for m in self.modalities}
        overall = {str(r): sum(model.active_parameters(m, tallies[rho_component(r)][m]) for m in self.modalities)
                   / sum(full.values()) for r in RHOS}
        kept = {m: {str(r): [int(k) for k in tallies[rho_component(r)][m].kept] for r in RHOS} for m in self.modalities}
        counts = model.parameter_counts()
        first = model.widths[self.modalities[0]]
        mismatch = 0
        for i in self.data.inputs:
            if i.lengths is not None:
                rows = self.data.valid
                mismatch += int((infer_lengths(i.values[rows]) != i.lengths[rows].long()).sum())
        return S3Summary(
            stage_components={"specialization": "spec", "selection": "sel",
                              **{f"rho={r}": rho_component(r) for r in RHOS}, "chosen on val": components.FUSED},
            columns={self.modalities[0]: [0, first],
                     self.modalities[1]: [first, first + model.widths[self.modalities[1]]]},
            rhos=list(RHOS), rho_val=rho_val, rho_val_component=rho_component(rho_val), val_accuracy=val,
            rho_choice=(f"val accuracy of a logistic-regression probe on [z_1, z_2] (train-standardised, C in "
                        f"{list(c.probe_c_grid)} by val accuracy) for label {self.target.name}; ties: larger rho"),
            sparsify_batch_size=c.sparsify_batch_size,
            sparsify_order="consecutive rows in the order transform receives them (mmpipe fit: manifest order)",
            active_fraction=overall, active_fraction_by_modality=by_modality, kept_pairs=kept,
            router_share=counts["n_router_params"] / counts["n_params"], n_router_params=counts["n_router_params"],
            n_params=counts["n_params"],
            routing={stage: {m: tallies[name][m].layers() for m in self.modalities}
                     for stage, name in (("specialization", "spec"), ("selection", "sel"))},
            target={"name": self.target.name, "kind": self.target.kind, "classes": self.target.classes,
                    "binarize_at": self.target.binarize_at},
            selection_losses=c.selection_losses, best_epochs=best_epochs,
            lengths_from_padding_mismatch=mismatch,
        )

