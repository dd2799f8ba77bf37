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
"""

from __future__ import annotations

import torch
from torch import nn

from mmpipe.adapters import components
from mmpipe.adapters.base import Dims
from mmpipe.adapters.baseline import mlp
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import Inputs, SupervisedConfig, SupervisedFusion
from mmpipe.adapters.targets import Target


@METHODS.register("late-fusion")
class LateFusion(SupervisedFusion):
    name = "late-fusion"
    description = "Late fusion: unimodal encoders fitted to the target separately, concatenated (supervised)"
    Config = SupervisedConfig
    modality_count = (2, None)

    def __init__(self, config: SupervisedConfig, dims: Dims, n_outputs: int = 1) -> None:
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

    def objective(self, target: Target, y: torch.Tensor, inputs: Inputs) -> torch.Tensor:
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
