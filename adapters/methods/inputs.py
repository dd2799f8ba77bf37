"""The frozen inputs themselves, as a method: one component h_<k> per modality, standardised with
the train mean and std, and fused = [h_1, ..., h_K] (plain concatenation of the frozen inputs).
Nothing is trained. Registered like any method so the evaluator probes the pretrained
representations exactly as it probes learned ones — the "h" bars of the MultiLoReFT paper's
Table 3b, beside MultiLoReFT's Φ_k (phi_<k>) and contrastive's c_k (c_<k>).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from mmpipe.adapters import components
from mmpipe.adapters.base import AdapterMethod, Dims, InputScaler, ProgressFn
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.registry import METHODS
from mmpipe.store.ranges import Checked


@dataclass(frozen=True)
class InputsConfig(Checked):
    standardize: bool = True


@METHODS.register("inputs")
class Inputs(AdapterMethod):
    name = "inputs"
    description = "The frozen input embeddings, one per modality (train-standardised), for comparison (nothing trained)"
    Config = InputsConfig
    modality_count = (1, None)

    def __init__(self, config: InputsConfig, dims: Dims) -> None:
        super().__init__()
        self.config, self.modalities = config, tuple(dims)
        self.scaler = InputScaler(dims)

    @classmethod
    def component_names(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        return (*(components.per_modality("h", k) for k in modalities), components.FUSED)

    @torch.no_grad()
    def transform(self, inputs: Mapping[str, torch.Tensor],
                  lengths: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        scaled = self.scaler(inputs)  # modality -> (N, D_k)
        return {**{components.per_modality("h", k): v for k, v in scaled.items()},
                components.FUSED: torch.cat(list(scaled.values()), 1)}

    @classmethod
    def from_state(cls, config: InputsConfig, dims: Dims, state: dict[str, torch.Tensor]) -> Inputs:
        model = cls(config, dims)
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, data: MultimodalFeatures, config: InputsConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[Inputs, dict[str, Any]]:
        started = time.perf_counter()
        model = cls(config, data.dims)
        if config.standardize:
            model.scaler.fit(data.split("train"))
        return model, {"epochs": 0, "timings": {"train_s": time.perf_counter() - started}}
