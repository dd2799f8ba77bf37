"""APOLLO (Zhang, Shivashankar & Uhler, "Partially shared multi-modal embedding learns holistic
representation of cell state", 2024), as benchmarked in the MultiLoReFT paper (§4.1: "an
autoencoder-based model that decouples shared and unique components through latent optimization,
directly learning embeddings for training samples before training encoders to generalize").
**Self-supervised**: no label is used.

Step 1, latent optimisation (train rows only). Learnable per-sample latents — one shared table
S ∈ R^{n_train × r_s} used by both modalities, and per-modality tables M_i ∈ R^{n_train × r_mi} —
and decoders from [s, m_i] and from s alone to each (standardised) modality::

    L_1 = Σ_i MSE(D_i([s + ε, m_i + ε']), h_i) + Σ_i MSE(D_si(s + ε), h_i)
          + λ (||s||² + ||m_1||² + ||m_2||²),          ε ~ N(0, σ² I) during training

The shared-only decoders make s carry what both modalities can be rebuilt from; m_i is left to
carry the rest of modality i. The latents have their own learning rate (``latent_lr``). There
are no latents for val rows, so step 1 stops on a plateau of its epoch-mean training loss.

Step 2, amortised encoders: with the latents and decoders frozen, per modality encoders
E_si: h_i → R^{r_s} and E_mi: h_i → R^{r_mi} regress the latents of the training samples::

    L_2 = Σ_i MSE(E_si(h_i), s) + MSE(E_mi(h_i), m_i)

selected on val by the reconstruction Σ_i MSE(D_i([E_si(h_i), E_mi(h_i)]), h_i). All components —
train, val and test rows alike — come from the encoders: z_si = E_si(h_i), z_mi = E_mi(h_i),
z_s = (z_s1 + z_s2) / 2, fused = [z_s, z_m1, z_m2]. Sizes: the ranks MultiLoReFT learned
(adapters/sizes.py). E_s1 and E_s2 regress the same latent s, so z_s1 and z_s2 are one space (the
retrieval pair), unless the encoders are not trained (``max_epochs_encoders`` = 0). The latent tables are part of the checkpoint (the parameter count grows with
n_train, paper Appendix A.4).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import nn

from mmpipe.adapters.base import Dims, ProgressFn, RetrievalPair, positional_pair, with_shared_and_fused
from mmpipe.adapters.baseline import Baseline, BaselineConfig, mlp, start_fit
from mmpipe.adapters.curves import Curves
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.loop import train_epochs
from mmpipe.adapters.losses import latent_norm_penalty
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.training import single_cpu_thread
from mmpipe.store.ranges import MAX_EPOCHS, NON_NEGATIVE, POSITIVE, between


@dataclass(frozen=True)
class APOLLOConfig(BaselineConfig):
    latent_lr: Annotated[float, POSITIVE] = 1e-2  # learning rate of the latents s, m_i in step 1
    latent_noise: Annotated[float, NON_NEGATIVE] = 0.05  # σ of the noise added to latents in step 1
    norm_penalty: Annotated[float, NON_NEGATIVE] = 1e-3  # λ
    # 0: the encoders keep their initialisation (only the latents are trained)
    max_epochs_encoders: Annotated[int, between(0, MAX_EPOCHS)] = 200


@METHODS.register("apollo")
class APOLLO(Baseline):
    name = "apollo"
    description = "APOLLO: latent optimisation of shared/private embeddings, then amortised encoders"
    Config = APOLLOConfig

    @classmethod
    def positional_names(cls) -> tuple[str, ...]:
        return ("z_s1", "z_s2", "z_m1", "z_m2", "z_s", "fused")

    @classmethod
    def retrieval_pairs(cls, modalities: tuple[str, ...], config: APOLLOConfig) -> tuple[RetrievalPair, ...]:
        return (positional_pair("z_s1", "z_s2", modalities),) if config.max_epochs_encoders > 0 else ()

    def __init__(self, config: APOLLOConfig, dims: Dims, n_train: int = 1) -> None:
        super().__init__(dims)
        d1, d2 = self.dims
        r_s, r_m1, r_m2 = check_sizes(config, dims)
        self.config = config
        h = config.hidden
        self.latent_s = nn.Parameter(0.1 * torch.randn(n_train, r_s))  # (n_train, r_s)
        self.latent_m1 = nn.Parameter(0.1 * torch.randn(n_train, r_m1))
        self.latent_m2 = nn.Parameter(0.1 * torch.randn(n_train, r_m2))
        self.dec1, self.dec2 = mlp(r_s + r_m1, h, d1), mlp(r_s + r_m2, h, d2)
        self.dec_s1, self.dec_s2 = mlp(r_s, h, d1), mlp(r_s, h, d2)
        self.enc_s1, self.enc_s2 = mlp(d1, h, r_s), mlp(d2, h, r_s)
        self.enc_m1, self.enc_m2 = mlp(d1, h, r_m1), mlp(d2, h, r_m2)

    def latents(self) -> list[nn.Parameter]:
        return [self.latent_s, self.latent_m1, self.latent_m2]

    def decoders(self) -> list[nn.Module]:
        return [self.dec1, self.dec2, self.dec_s1, self.dec_s2]

    def encoders(self) -> list[nn.Module]:
        return [self.enc_s1, self.enc_s2, self.enc_m1, self.enc_m2]

    def latent_objective(self, index: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor,
                         noise: float) -> torch.Tensor:
        """Step 1 on train rows ``index`` with standardised inputs h1 (B, d1), h2 (B, d2)."""
        s, m1, m2 = self.latent_s[index], self.latent_m1[index], self.latent_m2[index]  # (B, r)
        noisy = [z + noise * torch.randn_like(z) for z in (s, m1, m2)] if noise > 0 else [s, m1, m2]
        ns, nm1, nm2 = noisy
        rec = F.mse_loss(self.dec1(torch.cat([ns, nm1], 1)), h1) + F.mse_loss(self.dec2(torch.cat([ns, nm2], 1)), h2)
        shared_only = F.mse_loss(self.dec_s1(ns), h1) + F.mse_loss(self.dec_s2(ns), h2)
        return rec + shared_only + self.config.norm_penalty * latent_norm_penalty(s, m1, m2)

    def encode(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z_s1": self.enc_s1(h1), "z_s2": self.enc_s2(h2),  # (B, r_s)
                "z_m1": self.enc_m1(h1), "z_m2": self.enc_m2(h2)}  # (B, r_m1), (B, r_m2)

    def encoder_objective(self, index: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """Step 2: regress the frozen latents of train rows ``index``."""
        z = self.encode(h1, h2)
        s, m1, m2 = (t[index].detach() for t in self.latents())
        return (F.mse_loss(z["z_s1"], s) + F.mse_loss(z["z_s2"], s)
                + F.mse_loss(z["z_m1"], m1) + F.mse_loss(z["z_m2"], m2))

    def reconstruction(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        z = self.encode(h1, h2)
        return (F.mse_loss(self.dec1(torch.cat([z["z_s1"], z["z_m1"]], 1)), h1)
                + F.mse_loss(self.dec2(torch.cat([z["z_s2"], z["z_m2"]], 1)), h2))

    @torch.no_grad()
    def components(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.encode(*self.standardized(h1, h2))
        return with_shared_and_fused(out)

    @classmethod
    def from_state(cls, config: APOLLOConfig, dims: Dims, state: dict[str, torch.Tensor]) -> APOLLO:
        model = cls(config, dims, n_train=state["latent_s"].shape[0])
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, data: MultimodalFeatures, config: APOLLOConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[APOLLO, dict[str, Any]]:
        start = start_fit(data, config, seed, lambda d: cls(config, d.dims,
                                                            n_train=len(d.split_index["train"])))
        model, generator, device, started = start.model, start.generator, start.device, start.started
        (train1, train2), (val1, val2) = start.split("train"), start.split("val")
        curves = Curves()
        common = {"batch_size": config.minibatch_size, "patience": config.patience,
                  "min_rel_improvement": config.min_rel_improvement, "generator": generator, "device": device,
                  "progress": progress, "curves": curves}
        latent_optimizer = torch.optim.AdamW([
            {"params": model.latents(), "lr": config.latent_lr, "weight_decay": 0.0},
            {"params": [p for d in model.decoders() for p in d.parameters()]}],
            lr=config.lr, weight_decay=config.weight_decay)

        def latent_step(index: torch.Tensor) -> float:
            loss = model.latent_objective(index, train1[index], train2[index], config.latent_noise)
            latent_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            latent_optimizer.step()
            return float(loss.detach())

        encoder_optimizer = torch.optim.AdamW([p for e in model.encoders() for p in e.parameters()],
                                              lr=config.lr, weight_decay=config.weight_decay)

        def encoder_step(index: torch.Tensor) -> float:
            loss = model.encoder_objective(index, train1[index], train2[index])
            encoder_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            encoder_optimizer.step()
            return float(loss.detach())

        with single_cpu_thread(device):
            step1 = train_epochs(model, latent_step, len(train1), max_epochs=config.max_epochs,
                                 stage="latents", **common)
            for parameter in [*model.latents(), *(p for d in model.decoders() for p in d.parameters())]:
                parameter.requires_grad_(False)
            step2 = train_epochs(model, encoder_step, len(train1), max_epochs=config.max_epochs_encoders,
                                 validate=lambda: float(model.reconstruction(val1, val2)), stage="encoders",
                                 **common)
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        return model, {"stage_history": [step1, step2], "curves": curves.rows(),
                       "epochs": step1["epochs"] + step2["epochs"],
                       "sizes": list(check_sizes(config, model.dim_map)),
                       "timings": {"train_s": time.perf_counter() - started}}
