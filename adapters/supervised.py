"""The training schedule the supervised fusion baselines share (early and late fusion,
cross-attention, multiplicative interactions): fit ``predict(inputs)`` to the supervised target
(`adapters/targets.py`: the dataset's joint label unless ``target`` names another) on train rows
with AdamW, select the epoch on the target loss of val rows. The representation the evaluator
probes is the method's fused layer, *before* the prediction head.

``modulation`` ("ogm" / "ogm-ge", strength ``modulation_alpha``) scales each modality encoder's
gradients by the on-the-fly coefficients of `adapters/gradient_modulation.py`, computed at every
step from the modalities' own contributions to the prediction (``contributions``). A method
whose prediction has no such per-modality parts refuses it before any work; "none" (the default)
trains exactly as without the option.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from torch import nn

from mmpipe.adapters.base import Dims, InputScaler, ProgressFn
from mmpipe.adapters.baseline import BaselineConfig, Sized, train_one_stage
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.gradient_modulation import GradientModulation, Modulation
from mmpipe.adapters.targets import Target, supervised_target
from mmpipe.adapters.training import check_minibatch, resolve_device, seed_everything
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import between

Inputs = Mapping[str, torch.Tensor]  # modality -> (B, D_k), standardised


@dataclass(frozen=True)
class SupervisedConfig(BaselineConfig):
    target: str | None = None  # None: the dataset's joint label
    modulation: Modulation = "none"  # on-the-fly gradient modulation (adapters/gradient_modulation.py)
    modulation_alpha: Annotated[float, between(0, 100)] = 0.1  # its α; the authors' default setting


class SupervisedFusion(Sized):
    """Subclasses build their layers in ``__init__(config, dims, n_outputs)`` (after calling this
    ``__init__``) and define ``predict`` (target logits / value from standardised inputs) and
    ``fuse`` (their components from standardised inputs)."""

    def __init__(self, dims: Dims, n_outputs: int) -> None:
        super().__init__()
        self.modalities = tuple(dims)
        self.dim_map = dict(dims)
        self.scaler = InputScaler(dims)
        self.register_buffer("n_outputs", torch.tensor(n_outputs))

    def predict(self, inputs: Inputs) -> torch.Tensor:  # (B, n_outputs)
        raise NotImplementedError

    def fuse(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def contributions(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """Each modality's own contribution to the prediction, modality → (B, n_outputs), for
        gradient modulation; with ``modality_encoders``, defined only by a method whose prediction
        has per-modality parts."""
        raise NotImplementedError

    def modality_encoders(self) -> Mapping[str, nn.Module]:
        """modality → the layers that see that modality alone (the ones modulation scales)."""
        raise NotImplementedError

    @classmethod
    def check_modulation(cls, config: SupervisedConfig) -> None:
        if config.modulation != "none" and cls.contributions is SupervisedFusion.contributions:
            raise UserError(f"{cls.name}: modulation={config.modulation} needs each modality's own contribution "
                            f"to the prediction, and {cls.name} fuses the modalities before predicting; use "
                            "modulation=none (late-fusion has per-modality predictions)")

    def objective(self, target: Target, y: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        return target.loss(self.predict(inputs), y)

    @torch.no_grad()
    def transform(self, inputs: Inputs, lengths: Inputs | None = None) -> dict[str, torch.Tensor]:
        self.eval()
        return self.fuse(self.scaler(inputs))

    @classmethod
    def from_state(cls, config: Any, dims: Dims, state: dict[str, torch.Tensor]) -> SupervisedFusion:
        model = cls(config, dims, int(state["n_outputs"]))
        model.load_state_dict(state)
        return model

    @classmethod
    def fit(cls, data: MultimodalFeatures, config: SupervisedConfig, seed: int,
            progress: ProgressFn | None = None) -> tuple[SupervisedFusion, dict[str, Any]]:
        cls.check_modulation(config)
        started = time.perf_counter()
        generator = seed_everything(seed)
        device = resolve_device(config.device)
        data = data.to(device)
        target = supervised_target(data, config.target, device)
        check_minibatch(cls.name, config.minibatch_size, len(target.train_rows),
                        f"{data.dataset} (rows labelled {target.name})")
        model = cls(config, data.dims, target.n_outputs).to(device)
        model.scaler.fit(data.split("train"))
        scaled = model.scaler(data.values)  # modality -> (N, D_k), all rows; indexed by target rows
        train = {k: v[target.train_rows] for k, v in scaled.items()}
        val = {k: v[target.val_rows] for k, v in scaled.items()}
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        modulation = None
        if config.modulation != "none":  # GE noise from its own generator: the minibatch order stays the seed's
            modulation = GradientModulation(model.modality_encoders(), config.modulation, config.modulation_alpha,
                                            target.kind, torch.Generator(device).manual_seed(seed))

        def step(index: torch.Tensor) -> float:
            batch = {k: v[index] for k, v in train.items()}
            loss = model.objective(target, target.train_y[index], batch)
            optimizer.zero_grad(set_to_none=True)
            if modulation is not None:
                with torch.no_grad():
                    modulation.update(model.contributions(batch), target.train_y[index])
            loss.backward()
            optimizer.step()
            return float(loss.detach())

        with modulation.hooks() if modulation is not None else nullcontext():
            model, history = train_one_stage(model, config, step,
                                             lambda: float(model.objective(target, target.val_y, val)),
                                             len(target.train_rows), generator, device, progress, started,
                                             target=target.name)
        if modulation is not None:
            history["modulation"] = dataclasses.asdict(modulation.summary())
        return model, history
