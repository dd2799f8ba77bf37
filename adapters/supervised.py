"""The training schedule the supervised fusion baselines share (late fusion, cross-attention,
multiplicative interactions): fit ``predict(h1, h2)`` to the supervised target
(`adapters/targets.py`: the dataset's joint label unless ``target`` names another) on train rows
with AdamW, select the epoch on the target loss of val rows. The representation the evaluator
probes is the method's fused layer, *before* the prediction head.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from mmpipe.adapters.base import ProgressFn
from mmpipe.adapters.baseline import Baseline, BaselineConfig, train_one_stage
from mmpipe.adapters.data import PairedFeatures
from mmpipe.adapters.targets import Target, supervised_target
from mmpipe.adapters.training import resolve_device, seed_everything


@dataclass(frozen=True)
class SupervisedConfig(BaselineConfig):
    target: str | None = None  # None: the dataset's joint label


class SupervisedFusion(Baseline):
    """Subclasses build their layers in ``__init__(config, dims, n_outputs)`` and define
    ``predict`` (target logits / value from standardised inputs) and ``transform``."""

    def __init__(self, dims: tuple[int, int], n_outputs: int) -> None:
        super().__init__(dims)
        self.register_buffer("n_outputs", torch.tensor(n_outputs))

    def predict(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:  # (B, n_outputs)
        raise NotImplementedError

    def objective(self, target: Target, y: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        return target.loss(self.predict(h1, h2), y)

    @classmethod
    def from_state(cls, config: Any, dims: tuple[int, int], state: dict[str, torch.Tensor]) -> SupervisedFusion:
        model = cls(config, dims, int(state["n_outputs"]))
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, data: PairedFeatures, config: SupervisedConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[SupervisedFusion, dict[str, Any]]:
        started = time.perf_counter()
        generator = seed_everything(seed)
        device = resolve_device(config.device)
        data = data.to(device)
        target = supervised_target(data, config.target, device)
        model = cls(config, (data.h1.shape[1], data.h2.shape[1]), target.n_outputs).to(device)
        model.fit_scaler(*data.split("train"))
        h1, h2 = model.standardized(data.h1, data.h2)  # (N, d_i), all rows; indexed by target rows
        train1, train2 = h1[target.train_rows], h2[target.train_rows]
        val1, val2 = h1[target.val_rows], h2[target.val_rows]
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

        def step(index: torch.Tensor) -> float:
            loss = model.objective(target, target.train_y[index], train1[index], train2[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        return train_one_stage(model, config, step, lambda: float(model.objective(target, target.val_y, val1, val2)),
                               len(train1), generator, device, progress, started, target=target.name)
