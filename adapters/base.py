"""What every adapter method provides, so `adapters/fit.py`, the CLI and the tests treat all alike."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from mmpipe.adapters.data import PairedFeatures
from mmpipe.store.root import Store

ProgressFn = Callable[[str], None]


class AdapterMethod(nn.Module):
    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]  # frozen dataclass, every field defaulted
    component_names: ClassVar[tuple[str, ...]]
    ablation_fields: ClassVar[frozenset[str]] = frozenset()  # config switches that ``ablation`` names

    def register_scaler(self, dims: tuple[int, int]) -> None:
        """Buffers for input standardisation with train statistics, saved with the checkpoint;
        identity until ``fit_scaler`` is called."""
        d1, d2 = dims
        self.register_buffer("mean1", torch.zeros(d1))
        self.register_buffer("scale1", torch.ones(d1))
        self.register_buffer("mean2", torch.zeros(d2))
        self.register_buffer("scale2", torch.ones(d2))

    @torch.no_grad()
    def fit_scaler(self, train1: torch.Tensor, train2: torch.Tensor) -> None:
        self.mean1.copy_(train1.mean(0))
        self.scale1.copy_(train1.std(0).clamp_min(1e-6))
        self.mean2.copy_(train2.mean(0))
        self.scale2.copy_(train2.std(0).clamp_min(1e-6))

    def standardized(self, h1: torch.Tensor, h2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (h1 - self.mean1) / self.scale1, (h2 - self.mean2) / self.scale2

    @classmethod
    @abstractmethod
    def fit(cls, data: PairedFeatures, config: Any, seed: int,
            progress: ProgressFn | None = None) -> tuple[AdapterMethod, dict[str, Any]]:
        """Train on ``data``'s train split (selecting on val); return the model and a history
        dict merged into the run record (ranks, rank_history, stage_history, timings, ...)."""

    @classmethod
    def resolve_config(cls, config: Any, store: Store, data: PairedFeatures, seed: int) -> Any:
        """Fill config fields that depend on other published runs (e.g. subspace sizes taken from
        the MultiLoReFT run of the same data and seed) before the run key is computed, so the
        resolved values are part of the run's fingerprint. Default: the config unchanged."""
        return config

    @classmethod
    def ablation(cls, config: Any) -> str | None:
        """A short name for the ablation ``config`` represents (e.g. "no pruning"), None for the
        full method; reports keep ablations apart from the full model."""
        return None

    @classmethod
    def settings(cls, config: Any) -> dict[str, Any]:
        """Config fields that differ from the defaults, other than the ablation switches and the
        device. Runs with different settings are different variants in every table, so results
        of different hyperparameters are never averaged together."""
        defaults = cls.Config()
        skip = cls.ablation_fields | {"device"}
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name not in skip and getattr(config, f.name) != getattr(defaults, f.name)}

    @abstractmethod
    def transform(self, h1: torch.Tensor, h2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named components for rows of (h1, h2), in ``component_names`` order."""

    @classmethod
    @abstractmethod
    def from_state(cls, config: Any, dims: tuple[int, int], state: dict[str, torch.Tensor]) -> AdapterMethod:
        """Rebuild a trained model from its checkpoint (shapes may differ from a fresh one)."""
