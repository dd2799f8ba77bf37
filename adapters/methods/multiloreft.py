"""MultiLoReFT: decoupling shared and modality-specific subspaces with low-rank representation
fine-tuning (the MultiLoReFT paper, §3, Algorithms 1–2, Appendix A.2–A.4).

Model (§3.1, Eq. 1–3), for frozen embeddings h_1 ∈ R^{d1}, h_2 ∈ R^{d2} of the two modalities::

    Φ_i  = h_i + R_s(i)ᵀ (f_si(h_i) − R_s(i) h_i) + R_miᵀ (f_mi(h_i) − R_mi h_i)
    z_si = R_s(i) Φ_i,   z_mi = R_mi Φ_i

R_s(i) ∈ R^{r_s × d_i}, R_mi ∈ R^{r_mi × d_i} are unconstrained (their singular values carry the
energy that pruning reads); f are small MLPs d_i → hidden → r. When d1 = d2 the shared projection
is one matrix, R_s(1) = R_s(2) = R_s, exactly as Eq. 1. When the dims differ (Sim II 40/80,
CREMA-D video 512 / audio 768) one R_s cannot act on both, so each modality has its own shared
projection with a *common* rank r_s, pruned jointly by one SVD of [R_s(1) R_s(2)]
(``shared_projection``: "auto" ties iff d1 = d2, else "per_modality").

Objective (§3.2, Eq. 4–7), losses in `adapters/losses.py`::

    L_indep = HSIC(z_s1, z_m1) + HSIC(z_s2, z_m2) + HSIC(z_m1, z_m2)        (RBF, median heuristic)
    L_orth  = ||R_s(1) R_m1ᵀ||_F + ||R_s(2) R_m2ᵀ||_F
    L_MI    = ½ Σ_i InfoNCE(h_i, ẑ^(i))

Eq. 7 takes ⟨h_i, z^(i)⟩ with z^(i) = [z_mi, z_s of the other modality], whose dimension
(r_mi + r_s) differs from d_i. Our reading: map z^(i) back into h_i's space through the transposed
projections, ẑ^(i) = R_miᵀ z_mi + R_s(i)ᵀ z_s(j), the same back-projection Eq. 2–3 use for the
edits, and compare with cosine similarity at temperature τ = ``temperature``. The weights λ are
balanced by GradNorm (α = 1.5) over the projection matrices of the current stage, or fixed
(``weighting="fixed"``, ``fixed_weights`` for indep, orth, mi).

Training (§3.3, Algorithm 1), a schedule of `adapters/staged.py` stages: "shared" trains R_s,
f_s1, f_s2 on L_MI only; "private" trains R_m1, R_m2, f_m1, f_m2 on all losses; "joint" trains
everything and prunes. A stage ends when the validation loss (unweighted sum of the stage's
losses) improves by less than 0.1 % relative for ``patience`` epochs (40; ``joint_patience`` 100),
or at its epoch cap (100 / 100 / 200). Pruning (Algorithm 2), a hook after each joint epoch:
whenever the validation L_MI is within 10 % of its best, each R = U S Vᵀ keeps the k singular
values ≥ ε (at least one), R ← diag(S_k) V_kᵀ and the last Linear of each associated f is rotated
by U_kᵀ, so z = U_kᵀ z_old and Φ is unchanged up to the dropped directions; the optimiser is
rebuilt over the new parameters. When nothing falls below ε no rotation is done (that would only
reset optimiser state). The final model is the one at the end of the joint stage.

Choices not fixed by the paper, each a config field: inputs standardised with train statistics
(``standardize``; raw encoder outputs are far from centred, which makes cosine InfoNCE
uninformative); initial rank = min(d1, d2); f hidden width 64 with GELU; AdamW, learning rate
0.01, weight decay 1e-3 on the maps f and ``projection_weight_decay`` on the projections (1e-3 by
default; `mmpipe reproduce` uses 0.01 on Simulation I and 0.3 on Simulation II, chosen on
validation Δ); batch size 256; ε = 0.1 on singular values that start at 1 (orthonormal rows at
initialisation).

Components (positional names; `TwoModalityMethod` renames them for the modalities): z_s1, z_s2,
z_m1, z_m2, phi1, phi2, plus z_s = (z_s1 + z_s2) / 2 and fused = [z_s, z_m1, z_m2]. L_MI puts the
other modality's z_s(j) where z_s(i) would be in h_i's back-projection (and pruning rotates both
shared projections by one SVD), so z_s1 and z_s2 are coordinates of one space: the retrieval pair,
declared while L_MI is on (not with ``use_mi=False`` or a fixed MI weight of 0). Ablations
(paper Tables 5–6) are config: ``prune=False``, ``staged=False`` (one joint stage from the start),
``use_indep`` / ``use_orth`` / ``use_mi`` = False, ``weighting="fixed"``.

What was measured, tried and not kept (the Simulation II projection decay, options removed):
tests/benchmarks/multiloreft_notes.md, beside the benchmark that produced the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import nn

from mmpipe.adapters.base import (
    Dims,
    ProgressFn,
    RetrievalPair,
    TwoModalityMethod,
    positional_name,
    positional_pair,
    with_shared_and_fused,
)
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.gradnorm import GradNorm
from mmpipe.adapters.losses import independence_loss, info_nce, orthogonality_loss
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.staged import EpochContext, Stage, StagedTrainer
from mmpipe.adapters.training import check_minibatch, resolve_device, seed_everything
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import (
    DEVICE,
    EPOCHS,
    MAX_EPOCHS,
    NON_NEGATIVE,
    POSITIVE,
    WIDTH,
    Checked,
    Length,
    between,
)

LOSS_NAMES = ("indep", "orth", "mi")
STAGES = ("shared", "private", "joint")


@dataclass(frozen=True)
class MultiLoReFTConfig(Checked):
    rank: Annotated[int | None, WIDTH] = None  # initial rank of every subspace, at most min(d1, d2); None: min(d1, d2)
    hidden: Annotated[int, WIDTH] = 64
    activation: Literal["gelu", "relu", "tanh"] = "gelu"
    # one R_s for both modalities (tied) or one each; auto: tied iff d1 = d2
    shared_projection: Literal["auto", "tied", "per_modality"] = "auto"
    standardize: bool = True
    use_indep: bool = True  # L_indep (HSIC between shared and specific parts); False: ablated
    use_orth: bool = True  # L_orth (orthogonal subspaces); False: ablated
    use_mi: bool = True  # L_MI (InfoNCE between z_s1 and z_s2); False: ablated
    hsic_estimator: Literal["biased", "unbiased"] = "biased"  # HSIC estimator of L_indep
    temperature: Annotated[float, POSITIVE] = 0.1
    # loss weights: GradNorm over the stage's projections, or fixed_weights
    weighting: Literal["gradnorm", "fixed"] = "gradnorm"
    gradnorm_alpha: Annotated[float, NON_NEGATIVE] = 1.5  # GradNorm's α (restoring force)
    gradnorm_lr: Annotated[float, POSITIVE] = 0.025  # learning rate of GradNorm's loss weights
    fixed_weights: Annotated[tuple[float, ...], NON_NEGATIVE, Length(3)] = (1.0, 1.0, 1.0)  # indep, orth, mi
    staged: bool = True  # shared, private, joint stages; False: one joint stage from the start
    patience: Annotated[int, EPOCHS] = 40
    joint_patience: Annotated[int, EPOCHS] = 100  # patience of the joint stage
    min_rel_improvement: Annotated[float, NON_NEGATIVE] = 1e-3
    # 0 skips a stage; the schedule trains at least one epoch (`check`)
    max_epochs_shared: Annotated[int, between(0, MAX_EPOCHS)] = 100
    max_epochs_private: Annotated[int, between(0, MAX_EPOCHS)] = 100  # epoch cap of the private stage
    max_epochs_joint: Annotated[int, between(0, MAX_EPOCHS)] = 200  # epoch cap of the joint stage
    prune: bool = True  # prune ranks after each joint epoch (Algorithm 2)
    prune_threshold: Annotated[float, NON_NEGATIVE] = 0.1  # ε: singular values below it are dropped
    # prune only while the val L_MI is within this fraction of its best
    prune_mi_tolerance: Annotated[float, NON_NEGATIVE] = 0.10
    lr: Annotated[float, POSITIVE] = 1e-2
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-3  # on the maps f
    # on R_s, R_m1, R_m2: the pressure that lets unused directions fade
    projection_weight_decay: Annotated[float, NON_NEGATIVE] = 1e-3
    # not "batch_size": fingerprints drop that name as a speed-only knob, and here it shapes the result;
    # at most the train rows
    minibatch_size: Annotated[int, between(2, 2**20)] = 256
    device: Annotated[str, DEVICE] = "auto"

    def check(self) -> None:
        caps = (self.max_epochs_shared, self.max_epochs_private, self.max_epochs_joint) if self.staged \
            else (self.max_epochs_joint,)
        if not any(caps):
            stages = "max_epochs_shared, max_epochs_private, max_epochs_joint" if self.staged else "max_epochs_joint"
            raise UserError(f"multiloreft: {stages} {'are all' if self.staged else 'is'} 0: nothing would be trained; "
                            "give a stage epochs")


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class LowRankMap(nn.Module):
    """f: d → hidden → r, the learned edit inside one subspace."""

    def __init__(self, d: int, hidden: int, rank: int, activation: str) -> None:
        super().__init__()
        self.hidden = nn.Linear(d, hidden)
        self.act = ACTIVATIONS[activation]()
        self.out = nn.Linear(hidden, rank)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, d) → (B, r)
        return self.out(self.act(self.hidden(h)))

    @torch.no_grad()
    def rotate(self, basis: torch.Tensor) -> None:
        """out ← U_kᵀ out for basis U_k (r, k): the new outputs are U_kᵀ f(h)."""
        new = nn.Linear(self.out.in_features, basis.shape[1]).to(basis.device)
        new.weight.copy_(basis.T @ self.out.weight)
        new.bias.copy_(basis.T @ self.out.bias)
        self.out = new


def _orthonormal_rows(rank: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(max(rank, dim), max(rank, dim), generator=generator))
    return q[:rank, :dim].contiguous()  # orthonormal rows when rank <= dim


@METHODS.register("multiloreft")
class MultiLoReFT(TwoModalityMethod):
    name = "multiloreft"
    description = "MultiLoReFT: shared + modality-specific low-rank subspaces, HSIC/orth/InfoNCE, rank pruning"
    Config = MultiLoReFTConfig
    ablation_fields = frozenset({"prune", "staged", "use_orth", "use_indep", "use_mi", "weighting"})

    def __init__(self, config: MultiLoReFTConfig, dims: Dims, ranks: tuple[int, int, int] | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(dims)
        d1, d2 = self.dims
        mode = config.shared_projection
        if mode == "auto":
            mode = "tied" if d1 == d2 else "per_modality"
        if mode == "tied" and d1 != d2:
            raise UserError(f"shared_projection=tied needs equal dims, got {d1} and {d2}")
        self.config = config
        self.tied = mode == "tied"
        initial = min(d1, d2) if config.rank is None else config.rank
        r_s, r_m1, r_m2 = ranks or (initial, initial, initial)
        generator = generator or torch.Generator().manual_seed(0)
        # tied: [R_s]; per_modality: [R_s(1), R_s(2)]
        self.shared = nn.ParameterList([nn.Parameter(_orthonormal_rows(r_s, d, generator))
                                        for d in ([d1] if self.tied else [d1, d2])])
        self.R_m1 = nn.Parameter(_orthonormal_rows(r_m1, d1, generator))
        self.R_m2 = nn.Parameter(_orthonormal_rows(r_m2, d2, generator))
        self.f_s1 = LowRankMap(d1, config.hidden, r_s, config.activation)
        self.f_s2 = LowRankMap(d2, config.hidden, r_s, config.activation)
        self.f_m1 = LowRankMap(d1, config.hidden, r_m1, config.activation)
        self.f_m2 = LowRankMap(d2, config.hidden, r_m2, config.activation)

    @classmethod
    def positional_names(cls) -> tuple[str, ...]:
        return ("z_s1", "z_s2", "z_m1", "z_m2", "phi1", "phi2", "z_s", "fused")

    @classmethod
    def retrieval_pairs(cls, modalities: tuple[str, ...], config: MultiLoReFTConfig) -> tuple[RetrievalPair, ...]:
        mi_weighted = config.weighting != "fixed" or config.fixed_weights[LOSS_NAMES.index("mi")] > 0
        return (positional_pair("z_s1", "z_s2", modalities),) if config.use_mi and mi_weighted else ()

    # -- structure -----------------------------------------------------------------------------
    def R_s(self, modality: int) -> torch.Tensor:  # (r_s, d_i)
        return self.shared[0] if self.tied else self.shared[modality - 1]

    def ranks(self) -> dict[str, int]:
        """Current ranks by positional component name (z_s, z_m1, z_m2)."""
        return {"z_s": self.shared[0].shape[0], "z_m1": self.R_m1.shape[0], "z_m2": self.R_m2.shape[0]}

    def projections(self, stage: str) -> list[nn.Parameter]:
        shared, private = list(self.shared), [self.R_m1, self.R_m2]
        return {"shared": shared, "private": private, "joint": shared + private}[stage]

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        shared = [*self.projections("shared"), *self.f_s1.parameters(), *self.f_s2.parameters()]
        private = [self.R_m1, self.R_m2, *self.f_m1.parameters(), *self.f_m2.parameters()]
        return {"shared": shared, "private": private, "joint": shared + private}[stage]

    def optimizer(self, stage: str) -> torch.optim.Optimizer:
        """AdamW over the stage's parameters: ``projection_weight_decay`` on the projections,
        ``weight_decay`` on the maps f."""
        projections = self.projections(stage)
        ids = {id(p) for p in projections}
        maps = [p for p in self.stage_parameters(stage) if id(p) not in ids]
        return torch.optim.AdamW([
            {"params": projections, "weight_decay": self.config.projection_weight_decay},
            {"params": maps, "weight_decay": self.config.weight_decay},
        ], lr=self.config.lr)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        """h1: (B, d1), h2: (B, d2), already standardised → Φ and the four z components."""
        r_s1, r_s2 = self.R_s(1), self.R_s(2)
        phi1 = h1 + (self.f_s1(h1) - h1 @ r_s1.T) @ r_s1 + (self.f_m1(h1) - h1 @ self.R_m1.T) @ self.R_m1  # (B, d1)
        phi2 = h2 + (self.f_s2(h2) - h2 @ r_s2.T) @ r_s2 + (self.f_m2(h2) - h2 @ self.R_m2.T) @ self.R_m2  # (B, d2)
        return {
            "phi1": phi1, "phi2": phi2,
            "z_s1": phi1 @ r_s1.T, "z_s2": phi2 @ r_s2.T,  # (B, r_s)
            "z_m1": phi1 @ self.R_m1.T, "z_m2": phi2 @ self.R_m2.T,  # (B, r_m1), (B, r_m2)
        }

    def losses(self, out: dict[str, torch.Tensor], h1: torch.Tensor, h2: torch.Tensor,
               names: tuple[str, ...] = LOSS_NAMES) -> dict[str, torch.Tensor]:
        c = self.config
        result = {}
        if "indep" in names:
            result["indep"] = independence_loss(out["z_s1"], out["z_m1"], out["z_s2"], out["z_m2"], c.hsic_estimator)
        if "orth" in names:
            result["orth"] = orthogonality_loss([(self.R_s(1), self.R_m1), (self.R_s(2), self.R_m2)])
        if "mi" in names:
            back1 = out["z_m1"] @ self.R_m1 + out["z_s2"] @ self.R_s(1)  # (B, d1): [z_m1, z_s2] in h1's space
            back2 = out["z_m2"] @ self.R_m2 + out["z_s1"] @ self.R_s(2)  # (B, d2)
            result["mi"] = 0.5 * (info_nce(h1, back1, c.temperature) + info_nce(h2, back2, c.temperature))
        return result

    def components(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw rows h1 (N, d1), h2 (N, d2) → the positional components."""
        return with_shared_and_fused(self(*self.standardized(h1, h2)))

    # -- pruning (Algorithm 2) -----------------------------------------------------------------
    @torch.no_grad()
    def prune(self, threshold: float) -> bool:
        """Drop singular directions below ``threshold`` from every projection; True if any shrank."""
        changed = False
        kept = self._compress(torch.cat(list(self.shared), dim=1), threshold)
        if kept is not None:
            compressed, basis = kept  # (k, d1 [+ d2]), (r_s, k)
            widths = [p.shape[1] for p in self.shared]
            self.shared = nn.ParameterList([nn.Parameter(part.contiguous())
                                            for part in torch.split(compressed, widths, dim=1)])
            self.f_s1.rotate(basis)
            self.f_s2.rotate(basis)
            changed = True
        for name, f in (("R_m1", self.f_m1), ("R_m2", self.f_m2)):
            kept = self._compress(getattr(self, name), threshold)
            if kept is not None:
                compressed, basis = kept
                setattr(self, name, nn.Parameter(compressed.contiguous()))
                f.rotate(basis)
                changed = True
        return changed

    @staticmethod
    def _compress(matrix: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)  # (r, r), (r,), (r, d)
        k = max(1, int((s >= threshold).sum()))
        if k == matrix.shape[0]:
            return None
        return torch.diag(s[:k]) @ vh[:k], u[:, :k]  # R̃ (k, d), U_k (r, k)

    @classmethod
    def ablation(cls, config: MultiLoReFTConfig) -> str | None:
        """Names of the paper's ablations (Tables 5–6) that ``config`` applies, joined by ", "."""
        names = [label for label, applies in (
            ("no pruning", not config.prune),
            ("no staging", not config.staged),
            ("- orthogonality", not config.use_orth),
            ("- independence", not config.use_indep),
            ("- MI", not config.use_mi),
            ("- GradNorm", config.weighting == "fixed"),
        ) if applies]
        return ", ".join(names) or None

    # -- checkpoint ----------------------------------------------------------------------------
    @classmethod
    def from_state(cls, config: MultiLoReFTConfig, dims: Dims, state: dict[str, torch.Tensor]) -> MultiLoReFT:
        ranks = (state["shared.0"].shape[0], state["R_m1"].shape[0], state["R_m2"].shape[0])
        model = cls(config, dims, ranks)
        model.load_state_dict(state)
        return model

    # -- training (Algorithm 1) ----------------------------------------------------------------
    @classmethod
    def fit(cls, data: MultimodalFeatures, config: MultiLoReFTConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[MultiLoReFT, dict[str, Any]]:
        cls.check_inputs(data.kinds)
        return Algorithm1(cls, data, config, seed, progress).run()


class Algorithm1:
    """MultiLoReFT's schedule on the shared staged trainer: the stages and their active losses,
    GradNorm over the stage's projections (or fixed weights), and pruning as a joint-stage hook."""

    def __init__(self, cls: type[MultiLoReFT], data: MultimodalFeatures, config: MultiLoReFTConfig, seed: int,
                 progress: ProgressFn | None) -> None:
        narrowest = min(data.dims.items(), key=lambda item: item[1])
        if config.rank is not None and config.rank > narrowest[1]:
            raise UserError(f"multiloreft: rank={config.rank} is wider than the narrowest input ({narrowest[0]}: "
                            f"{narrowest[1]}); set rank to at most {narrowest[1]}, or none for min(d1, d2)")
        check_minibatch(cls.name, config.minibatch_size, len(data.split_index["train"]), data.dataset)
        self.config = config
        self.generator = seed_everything(seed)
        self.device = resolve_device(config.device)
        data = data.to(self.device)
        self.model = cls(config, data.dims, generator=self.generator).to(self.device)
        train, val = data.split("train"), data.split("val")  # modality -> rows
        first, second = self.model.modalities
        if config.standardize:
            self.model.fit_scaler(train[first], train[second])
        self.train = self.model.standardized(train[first], train[second])  # (n_train, d1), (n_train, d2)
        self.val = self.model.standardized(val[first], val[second])
        self.initial_ranks = self.model.ranks()
        self.trainer = StagedTrainer(self.model, train_losses=self.train_losses,
                                     validation_losses=self.validation_losses, n_train=len(self.train[0]),
                                     batch_size=config.minibatch_size, generator=self.generator, device=self.device,
                                     describe=self.named_ranks, progress=progress)

    def named_ranks(self) -> dict[str, int]:
        """Ranks keyed by component name for the modalities (z_s, z_<first>, z_<second>)."""
        return {positional_name(k, self.model.modalities): v for k, v in self.model.ranks().items()}

    def active_losses(self, stage: str) -> tuple[str, ...]:
        c = self.config
        enabled = {"indep": c.use_indep, "orth": c.use_orth, "mi": c.use_mi}
        wanted = ("mi",) if stage == "shared" else LOSS_NAMES
        return tuple(name for name in wanted if enabled[name])

    def train_losses(self, index: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The active losses on the standardised train rows ``index`` (B,)."""
        b1, b2 = self.train[0][index], self.train[1][index]  # (B, d1), (B, d2)
        return self.model.losses(self.model(b1, b2), b1, b2, names)

    @torch.no_grad()
    def validation_losses(self) -> dict[str, float]:
        """Every loss (whatever the stage) on the validation rows, averaged over full batches."""
        self.model.eval()
        h1, h2 = self.val
        size = self.config.minibatch_size
        starts = range(0, max(1, len(h1) - size + 1), size) if len(h1) >= size else [0]
        totals = dict.fromkeys(LOSS_NAMES, 0.0)
        for start in starts:
            b1, b2 = h1[start:start + size], h2[start:start + size]
            for name, value in self.model.losses(self.model(b1, b2), b1, b2).items():
                totals[name] += float(value) / len(starts)
        return totals

    def stage(self, name: str) -> Stage:
        c = self.config
        losses = self.active_losses(name)
        learned = None
        if c.weighting == "gradnorm":
            gradnorm = GradNorm(len(losses), c.gradnorm_alpha, c.gradnorm_lr, self.device)

            def backward(values: Mapping[str, torch.Tensor]) -> None:
                gradnorm.backward([values[n] for n in losses], self.model.stage_parameters(name),
                                  self.model.projections(name))

            def learned() -> dict[str, float]:
                return gradnorm.named_weights(losses)
        else:
            weights = torch.tensor([c.fixed_weights[LOSS_NAMES.index(n)] for n in losses], device=self.device)

            def backward(values: Mapping[str, torch.Tensor]) -> None:
                (weights * torch.stack([values[n] for n in losses])).sum().backward()
        hooks = (Pruning(self.model, c.prune_threshold, c.prune_mi_tolerance),) if name == "joint" and c.prune else ()
        return Stage(name, losses, lambda: self.model.optimizer(name),
                     patience=c.joint_patience if name == "joint" else c.patience,
                     max_epochs={"shared": c.max_epochs_shared, "private": c.max_epochs_private,
                                 "joint": c.max_epochs_joint}[name],
                     min_rel_improvement=c.min_rel_improvement, backward=backward, after_epoch=hooks, weights=learned)

    def schedule(self) -> Iterator[Stage]:
        """shared → private → joint (``staged``), or one joint stage; each built as it starts."""
        for name in STAGES if self.config.staged else ("joint",):
            yield self.stage(name)

    def run(self) -> tuple[MultiLoReFT, dict[str, Any]]:
        started = time.perf_counter()
        history = self.trainer.run(self.schedule())
        final = self.named_ranks()
        initial = {positional_name(k, self.model.modalities): v for k, v in self.initial_ranks.items()}
        record = {
            "ranks": {k: {"initial": initial[k], "final": v} for k, v in final.items()},
            "rank_history": history.epochs,
            "stage_history": history.stages,
            "curves": history.curves.rows(),
            "epochs": history.n_epochs,
            "timings": {"train_s": time.perf_counter() - started},
            "n_params": sum(p.numel() for p in self.model.parameters()),
        }
        return self.model, record


class Pruning:
    """Algorithm 2 as a joint-stage hook: after an epoch whose validation L_MI is within
    ``tolerance`` of the best so far, prune every projection at ``threshold`` and, if any shrank,
    rebuild the optimiser over the new parameters."""

    def __init__(self, model: MultiLoReFT, threshold: float, tolerance: float) -> None:
        self.model, self.threshold, self.tolerance = model, threshold, tolerance
        self.best_mi = float("inf")

    def __call__(self, context: EpochContext) -> None:
        mi = context.val["mi"]
        if mi <= (1 + self.tolerance) * self.best_mi and self.model.prune(self.threshold):
            context.rebuild_optimizer()
        self.best_mi = min(self.best_mi, mi)
