"""Late fusion (Baltrušaitis, Ahuja & Morency, "Multimodal machine learning: a survey and
taxonomy", TPAMI 2019), the MultiLoReFT paper's simplest fusion baseline (§4.1: "simply
concatenates modality representations"). **Supervised** on the target of `adapters/targets.py`
(default: the dataset's joint label). Takes two or more modalities.

Late = each modality is modelled on its own and only the results are combined: a unimodal encoder
and head per modality k, each fitted to the target from its own modality alone (the losses share
no parameter, so their sum trains them independently), then concatenated::

    e_k = f_k(h_k) ∈ R^{r_s + r_k},   ŷ_k = W_k e_k + b_k,   L = Σ_k loss(ŷ_k, y)
    fused = [e_1, ..., e_K]

e_k is as wide as modality k's MultiLoReFT representation [z_s, z_k] (sizes: adapters/sizes.py).
Components: e_<k> per modality, fused.

``objective="fused"`` trains the averaged prediction instead, L = loss((1/K) Σ_k ŷ_k, y): the
decision-level fusion trained jointly, where the modalities compete for the one loss (the setting
of on-the-fly gradient modulation, whose concatenation head is a sum of per-modality logits).
Gradient modulation (``modulation``, `adapters/gradient_modulation.py`) takes ŷ_k as modality k's
contribution and scales the gradients of f_k (never of the heads W_k). Under the default
objective no encoder's gradient depends on another modality, so OGM's coefficients can only slow
the dominant modality's own training, never strengthen a weaker one's (GE's noise reaches every
encoder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.base import Dims
from mmpipe.adapters.baseline import mlp
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import Inputs, SupervisedConfig, SupervisedFusion
from mmpipe.adapters.targets import Target


@dataclass(frozen=True)
class LateFusionConfig(SupervisedConfig):
    objective: Literal["unimodal", "fused"] = "unimodal"  # Σ_k loss(ŷ_k, y), or loss(mean_k ŷ_k, y)


@METHODS.register("late-fusion")
class LateFusion(SupervisedFusion):
    name = "late-fusion"
    description = "Late fusion: unimodal encoders fitted to the target separately, concatenated (supervised)"
    Config = LateFusionConfig
    modality_count = (2, None)

    def __init__(self, config: LateFusionConfig, dims: Dims, n_outputs: int = 1) -> None:
        super().__init__(dims, n_outputs)
        r_s, *r_private = check_sizes(config, dims)
        widths = {k: r_s + r for k, r in zip(dims, r_private, strict=True)}
        self.config = config
        self.encoders = nn.ModuleDict({k: mlp(d, config.hidden, widths[k]) for k, d in dims.items()})
        self.heads = nn.ModuleDict({k: nn.Linear(widths[k], n_outputs) for k in dims})

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return (*(components.per_modality("e", k) for k in modalities), components.FUSED)

    def unimodal(self, inputs: Inputs) -> list[torch.Tensor]:
        """Each modality's own prediction ŷ_k (B, n_outputs), in modality order."""
        return [self.heads[k](self.encoders[k](inputs[k])) for k in self.modalities]

    def contributions(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        return dict(zip(self.modalities, self.unimodal(inputs), strict=True))

    def modality_encoders(self) -> Mapping[str, nn.Module]:
        return self.encoders

    def objective(self, target: Target, y: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        if self.config.objective == "fused":
            return target.loss(self.predict(inputs), y)
        first, *rest = (target.loss(prediction, y) for prediction in self.unimodal(inputs))
        for loss in rest:
            first = first + loss
        return first

    def predict(self, inputs: Inputs) -> torch.Tensor:
        """The unimodal predictions averaged (decision-level fusion)."""
        first, *rest = self.unimodal(inputs)
        for prediction in rest:
            first = first + prediction
        return first / len(self.modalities)

    def fuse(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        e = {k: self.encoders[k](inputs[k]) for k in self.modalities}  # modality -> (N, r_s + r_k)
        return {**{components.per_modality("e", k): v for k, v in e.items()},
                components.FUSED: torch.cat(list(e.values()), 1)}
