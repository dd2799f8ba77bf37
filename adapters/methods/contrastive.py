"""Contrastive fine-tuning, CLIP-style (Radford et al. 2021), the MultiLoReFT paper's
"contrastive learning" baseline (§4.1: "pulling paired modalities closer and unpaired samples
further"; Table 3b compares its per-modality representations c_i with the inputs h_i).
**Self-supervised**: no label is used; val rows select the epoch.

A projection head per modality onto a common width w, trained with the symmetric InfoNCE over the
minibatch (cosine similarity, temperature τ = 0.07)::

    c_i = g_i(h_i) ∈ R^w,    L = ½ [InfoNCE(c_1 → c_2) + InfoNCE(c_2 → c_1)]

w = max(r_s + r_m1, r_s + r_m2): as wide as the wider modality's MultiLoReFT representation
(adapters/sizes.py). Components: c1, c2 (unnormalised head outputs) and fused = [c1, c2]. c1 and c2
are the vectors the InfoNCE compares by cosine, so they are one space: the retrieval pair (c1, c2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch

from mmpipe.adapters.base import Dims, ProgressFn, RetrievalPair, positional_pair
from mmpipe.adapters.baseline import Baseline, BaselineConfig, mlp, start_fit, train_one_stage
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.losses import symmetric_info_nce
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.store.ranges import POSITIVE


@dataclass(frozen=True)
class ContrastiveConfig(BaselineConfig):
    temperature: Annotated[float, POSITIVE] = 0.07


@METHODS.register("contrastive")
class Contrastive(Baseline):
    name = "contrastive"
    description = "Contrastive (CLIP-style) projection heads with symmetric InfoNCE (self-supervised)"
    Config = ContrastiveConfig

    @classmethod
    def positional_names(cls) -> tuple[str, ...]:
        return ("c1", "c2", "fused")

    @classmethod
    def retrieval_pairs(cls, modalities: tuple[str, ...], config: ContrastiveConfig) -> tuple[RetrievalPair, ...]:
        return (positional_pair("c1", "c2", modalities),)

    def __init__(self, config: ContrastiveConfig, dims: Dims) -> None:
        super().__init__(dims)
        r_s, r_m1, r_m2 = check_sizes(config, dims)
        width = r_s + max(r_m1, r_m2)
        self.config = config
        self.head1, self.head2 = mlp(self.dims[0], config.hidden, width), mlp(self.dims[1], config.hidden, width)

    def objective(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        return symmetric_info_nce(self.head1(h1), self.head2(h2), self.config.temperature)

    @torch.no_grad()
    def components(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        s1, s2 = self.standardized(h1, h2)
        c1, c2 = self.head1(s1), self.head2(s2)  # (N, w)
        return {"c1": c1, "c2": c2, "fused": torch.cat([c1, c2], 1)}

    @classmethod
    def fit(cls, data: MultimodalFeatures, config: ContrastiveConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[Contrastive, dict[str, Any]]:
        start = start_fit(data, config, seed, lambda d: cls(config, d.dims))
        model = start.model
        (train1, train2), (val1, val2) = start.split("train"), start.split("val")
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        batch = config.minibatch_size  # at most the train rows (start_fit refuses more)

        def step(index: torch.Tensor) -> float:
            loss = model.objective(train1[index], train2[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        def validate() -> float:
            # in training-sized blocks: InfoNCE grows with the number of negatives
            blocks = [(s, s + batch) for s in range(0, max(1, len(val1) - batch + 1), batch)]
            return sum(float(model.objective(val1[a:b], val2[a:b])) for a, b in blocks) / len(blocks)

        return train_one_stage(model, config, step, validate, len(train1), start.generator, start.device, progress,
                               start.started)
