"""Late fusion (Baltrušaitis, Ahuja & Morency, "Multimodal machine learning: a survey and
taxonomy", TPAMI 2019), the MultiLoReFT paper's simplest fusion baseline (§4.1: "simply
concatenates modality representations"). **Supervised** on the target of `adapters/targets.py`
(default: the dataset's joint label).

Late = each modality is modelled on its own and only the results are combined: a unimodal encoder
and head per modality, each fitted to the target from its own modality alone (the two losses
share no parameter, so their sum trains them independently), then concatenated::

    e_i = f_i(h_i) ∈ R^{r_s + r_mi},   ŷ_i = W_i e_i + b_i,   L = Σ_i loss(ŷ_i, y)
    fused = [e_1, e_2]

e_i is as wide as modality i's MultiLoReFT representation [z_s, z_mi] (sizes: adapters/sizes.py).
Components: e1, e2, fused.
"""

from __future__ import annotations

import torch
from torch import nn

from mmpipe.adapters.baseline import mlp
from mmpipe.adapters.registry import METHODS
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.supervised import SupervisedConfig, SupervisedFusion
from mmpipe.adapters.targets import Target


@METHODS.register("late-fusion")
class LateFusion(SupervisedFusion):
    name = "late-fusion"
    description = "Late fusion: unimodal encoders fitted to the target separately, concatenated (supervised)"
    Config = SupervisedConfig
    component_names = ("e1", "e2", "fused")

    def __init__(self, config: SupervisedConfig, dims: tuple[int, int], n_outputs: int = 1) -> None:
        super().__init__(dims, n_outputs)
        r_s, r_m1, r_m2 = check_sizes(config, dims)
        self.config = config
        self.enc1, self.enc2 = mlp(dims[0], config.hidden, r_s + r_m1), mlp(dims[1], config.hidden, r_s + r_m2)
        self.head1, self.head2 = nn.Linear(r_s + r_m1, n_outputs), nn.Linear(r_s + r_m2, n_outputs)

    def objective(self, target: Target, y: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        return target.loss(self.head1(self.enc1(h1)), y) + target.loss(self.head2(self.enc2(h2)), y)

    def predict(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """The two unimodal predictions averaged (decision-level fusion)."""
        return (self.head1(self.enc1(h1)) + self.head2(self.enc2(h2))) / 2

    @torch.no_grad()
    def transform(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        self.eval()
        s1, s2 = self.standardized(h1, h2)
        e1, e2 = self.enc1(s1), self.enc2(s2)  # (N, r_s + r_m1), (N, r_s + r_m2)
        return {"e1": e1, "e2": e2, "fused": torch.cat([e1, e2], 1)}
