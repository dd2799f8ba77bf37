"""DRIM-U, the self-supervised variant of DRIM (Robinet et al., "DRIM: Learning Disentangled
Representations from Incomplete Multimodal Healthcare Data", MICCAI 2024), as the MultiLoReFT
paper benchmarks it (§4.1: "we adopt its self-supervised variant"). **Self-supervised**: no label
is used for training; val rows select the epoch.

Per modality i, on standardised inputs h_i, a shared and a unique encoder with L2-normalised
outputs, and a decoder from both::

    z_si = normalize(E_si(h_i)) ∈ R^{r_s},   z_mi = normalize(E_ui(h_i)) ∈ R^{r_mi},
    ĥ_i  = D_i([z_si, z_mi])

Objective, α = 1, γ = 0.8 by default (the DRIM paper's weights)::

    L_shared = ½ [InfoNCE(z_s1 → z_s2) + InfoNCE(z_s2 → z_s1)]     cosine, τ = 0.07; positives: the
                                                                     same sample across modalities
    L_unique = Σ_i fool(T_i([z_si, z_mi]), T_i([z_si shuffled, z_mi]))
    L_rec    = Σ_i MSE(ĥ_i, h_i)
    L        = α L_shared + γ L_unique + L_rec

T_i is a discriminator telling joint pairs [s, u] (label 1) from pairs of the product of marginals
[s of another sample in the batch, u] (label 0); "fool" is its loss with the labels flipped
(`losses.fooling_loss`). The discriminators have their **own optimizer** and take one step per
encoder step on detached components (`losses.discriminator_loss`), so the encoders are trained
against them: a unique component that carries information about the shared one is penalised.
"Shuffled" is a roll of the (already randomly ordered) minibatch by one row: a permutation
without fixed points. Validation criterion: α L_shared + L_rec on val rows (the adversarial term
of a moving discriminator is not a convergence signal).

Sizes (r_s, r_m1, r_m2): the ranks MultiLoReFT learned (adapters/sizes.py). Components: z_s1,
z_s2, z_m1, z_m2, z_s = (z_s1 + z_s2) / 2, fused = [z_s, z_m1, z_m2]. L_shared compares z_s1 with z_s2
by cosine, so they are one space: the retrieval pair, declared while α > 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import nn

from mmpipe.adapters.base import Dims, ProgressFn, RetrievalPair, positional_pair, with_shared_and_fused
from mmpipe.adapters.baseline import Baseline, BaselineConfig, mlp, start_fit, train_one_stage
from mmpipe.adapters.curves import LOSS
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.losses import discriminator_loss, fooling_loss, symmetric_info_nce
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.store.ranges import NON_NEGATIVE, POSITIVE

TERMS = ("shared", "unique", "rec")  # the encoders' loss terms (`DRIMU.objective`)


@dataclass(frozen=True)
class DRIMUConfig(BaselineConfig):
    alpha: Annotated[float, NON_NEGATIVE] = 1.0  # α, weight of L_shared (InfoNCE of z_s1, z_s2)
    gamma: Annotated[float, NON_NEGATIVE] = 0.8  # γ, weight of L_unique (fooling the discriminators)
    temperature: Annotated[float, POSITIVE] = 0.07
    discriminator_lr: Annotated[float, POSITIVE] = 1e-3  # learning rate of the discriminators' optimizer


@METHODS.register("drimu")
class DRIMU(Baseline):
    name = "drimu"
    description = "DRIM-U (self-supervised): shared/unique encoders, contrastive + adversarial + reconstruction"
    Config = DRIMUConfig

    @classmethod
    def positional_names(cls) -> tuple[str, ...]:
        return ("z_s1", "z_s2", "z_m1", "z_m2", "z_s", "fused")

    @classmethod
    def retrieval_pairs(cls, modalities: tuple[str, ...], config: DRIMUConfig) -> tuple[RetrievalPair, ...]:
        return (positional_pair("z_s1", "z_s2", modalities),) if config.alpha > 0 else ()

    def __init__(self, config: DRIMUConfig, dims: Dims) -> None:
        super().__init__(dims)
        d1, d2 = self.dims
        r_s, r_m1, r_m2 = check_sizes(config, dims)
        self.config = config
        h = config.hidden
        self.enc_s1, self.enc_s2 = mlp(d1, h, r_s), mlp(d2, h, r_s)
        self.enc_u1, self.enc_u2 = mlp(d1, h, r_m1), mlp(d2, h, r_m2)
        self.dec1, self.dec2 = mlp(r_s + r_m1, h, d1), mlp(r_s + r_m2, h, d2)
        self.disc1, self.disc2 = mlp(r_s + r_m1, h, 1), mlp(r_s + r_m2, h, 1)

    def discriminators(self) -> list[nn.Module]:
        return [self.disc1, self.disc2]

    def encoder_parameters(self) -> list[nn.Parameter]:
        modules = [self.enc_s1, self.enc_s2, self.enc_u1, self.enc_u2, self.dec1, self.dec2]
        return [p for m in modules for p in m.parameters()]

    def forward(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Standardised h1 (B, d1), h2 (B, d2) → unit-norm components."""
        return {"z_s1": F.normalize(self.enc_s1(h1), dim=1), "z_s2": F.normalize(self.enc_s2(h2), dim=1),  # (B, r_s)
                "z_m1": F.normalize(self.enc_u1(h1), dim=1), "z_m2": F.normalize(self.enc_u2(h2), dim=1)}

    def pair_logits(self, out: dict[str, torch.Tensor], detach: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per modality: discriminator logits (B, 1) of joint [s, u] and of marginal [roll(s), u]."""
        pairs = []
        for disc, s, u in ((self.disc1, out["z_s1"], out["z_m1"]), (self.disc2, out["z_s2"], out["z_m2"])):
            if detach:
                s, u = s.detach(), u.detach()
            pairs.append((disc(torch.cat([s, u], 1)), disc(torch.cat([s.roll(1, 0), u], 1))))
        return pairs

    def objective(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoders' losses on a standardised batch (discriminators held as they are)."""
        out = self(h1, h2)
        rec = F.mse_loss(self.dec1(torch.cat([out["z_s1"], out["z_m1"]], 1)), h1) \
            + F.mse_loss(self.dec2(torch.cat([out["z_s2"], out["z_m2"]], 1)), h2)
        shared = symmetric_info_nce(out["z_s1"], out["z_s2"], self.config.temperature)
        unique = sum(fooling_loss(j, m) for j, m in self.pair_logits(out, detach=False))
        c = self.config
        return {"shared": shared, "unique": unique, "rec": rec,
                "total": c.alpha * shared + c.gamma * unique + rec}

    def discriminator_objective(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self(h1, h2)
        return sum(discriminator_loss(j, m) for j, m in self.pair_logits(out, detach=True))

    @torch.no_grad()
    def components(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self(*self.standardized(h1, h2))
        return with_shared_and_fused(out)

    @classmethod
    def fit(cls, data: MultimodalFeatures, config: DRIMUConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[DRIMU, dict[str, Any]]:
        start = start_fit(data, config, seed, lambda d: cls(config, d.dims))
        model = start.model
        (train1, train2), (val1, val2) = start.split("train"), start.split("val")
        encoders = torch.optim.AdamW(model.encoder_parameters(), lr=config.lr, weight_decay=config.weight_decay)
        discriminators = torch.optim.AdamW([p for d in model.discriminators() for p in d.parameters()],
                                           lr=config.discriminator_lr, weight_decay=config.weight_decay)

        def step(index: torch.Tensor) -> dict[str, float]:
            b1, b2 = train1[index], train2[index]
            losses = model.objective(b1, b2)
            encoders.zero_grad(set_to_none=True)
            losses["total"].backward()
            encoders.step()
            discriminators.zero_grad(set_to_none=True)  # drops what the encoder pass left on them
            adversary = model.discriminator_objective(b1, b2)
            adversary.backward()
            discriminators.step()
            # LOSS: the encoders' loss trained on; the terms and the discriminators' loss are recorded
            # (read from the device at once)
            values = torch.stack([losses["total"], *(losses[k] for k in TERMS), adversary]).detach().tolist()
            return dict(zip((LOSS, *TERMS, "discriminator"), values, strict=True))

        def validate() -> dict[str, float]:
            losses = model.objective(val1, val2)
            # LOSS: the monitored value (the adversarial term is a game, not a quantity to drive down)
            return {LOSS: float(config.alpha * losses["shared"] + losses["rec"]),
                    **{k: float(losses[k]) for k in TERMS}}

        return train_one_stage(model, config, step, validate, len(train1), start.generator, start.device, progress,
                               start.started)
