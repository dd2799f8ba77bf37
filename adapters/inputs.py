"""The frozen inputs themselves, as a method: components h1 and h2 standardised with the train
mean and std, and fused = [h1, h2] (plain concatenation of the frozen inputs). Nothing is trained. Registered like any method so the evaluator probes the
pretrained representations exactly as it probes learned ones — the "h" bars of the MultiLoReFT
paper's Table 3b, beside MultiLoReFT's Φ_i (phi1, phi2) and contrastive's c_i (c1, c2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from mmpipe.adapters.base import AdapterMethod, ProgressFn
from mmpipe.adapters.data import PairedFeatures
from mmpipe.adapters.registry import METHODS


@dataclass(frozen=True)
class InputsConfig:
    standardize: bool = True


@METHODS.register("inputs")
class Inputs(AdapterMethod):
    name = "inputs"
    description = "The frozen input embeddings h1, h2 (train-standardised), for comparison (nothing trained)"
    Config = InputsConfig
    component_names = ("h1", "h2", "fused")

    def __init__(self, config: InputsConfig, dims: tuple[int, int]) -> None:
        super().__init__()
        self.config, self.dims = config, dims
        self.register_scaler(dims)

    @torch.no_grad()
    def transform(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        s1, s2 = self.standardized(h1, h2)  # (N, d1), (N, d2)
        return {"h1": s1, "h2": s2, "fused": torch.cat([s1, s2], 1)}

    @classmethod
    def from_state(cls, config: InputsConfig, dims: tuple[int, int], state: dict[str, torch.Tensor]) -> Inputs:
        model = cls(config, dims)
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, data: PairedFeatures, config: InputsConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[Inputs, dict[str, Any]]:
        started = time.perf_counter()
        model = cls(config, (data.h1.shape[1], data.h2.shape[1]))
        if config.standardize:
            model.fit_scaler(*data.split("train"))
        return model, {"epochs": 0, "timings": {"train_s": time.perf_counter() - started}}
