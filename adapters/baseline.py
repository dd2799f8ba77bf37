"""What the baselines share: a config base (sizes, optimiser, schedule), input standardisation
with train statistics, small MLPs, the opening of a self-supervised fit and one training stage.

Every baseline trains on the same cached tensors as MultiLoReFT, standardised with the train
mean and std (saved in the checkpoint), with AdamW and validation-based early stopping
(`adapters/loop.py`), and records its training curves (`adapters/curves.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import nn

from mmpipe.adapters.base import AdapterMethod, Dims, ProgressFn, TwoModalityMethod
from mmpipe.adapters.curves import HISTORY_KEY as CURVES
from mmpipe.adapters.curves import Curves
from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.adapters.loop import StepFn, ValidateFn, train_epochs
from mmpipe.adapters.sizes import check_sizes
from mmpipe.adapters.training import check_minibatch, resolve_device, seed_everything, single_cpu_thread
from mmpipe.store.ranges import DEVICE, EPOCHS, NON_NEGATIVE, POSITIVE, WIDTH, Checked, Length, between


@dataclass(frozen=True)
class BaselineConfig(Checked):
    size: Literal["learned", "input"] = "learned"  # see adapters/sizes.py
    # (r_s, r_k per modality); filled by the fit workflow when None
    sizes: Annotated[tuple[int, ...] | None, WIDTH, Length(2, None)] = None
    sizes_from: str | None = None  # the run (or "input") the sizes came from
    hidden: Annotated[int, WIDTH] = 64
    lr: Annotated[float, POSITIVE] = 1e-3
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-4
    # not "batch_size": fingerprints drop that name, and it shapes results; at most the train rows
    minibatch_size: Annotated[int, between(2, 2**20)] = 256
    max_epochs: Annotated[int, EPOCHS] = 200
    patience: Annotated[int, EPOCHS] = 20
    min_rel_improvement: Annotated[float, NON_NEGATIVE] = 1e-3
    device: Annotated[str, DEVICE] = "auto"


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """d_in → hidden → d_out with GELU (the same width and activation as MultiLoReFT's f)."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class Sized(AdapterMethod):
    """A method sized like MultiLoReFT's subspaces (``BaselineConfig.size`` / ``sizes``)."""


class Baseline(Sized, TwoModalityMethod):
    """A self-supervised two-modality baseline (contrastive, DRIM-U, APOLLO)."""

    @classmethod
    def ablation(cls, config: Any) -> str | None:
        """Sizes fixed to the input dimensionality (the paper's Table 4 ablation of the decoupling
        baselines) are reported apart. (For the supervised fusions ``size=input`` is a setting:
        the only sizing there is on more than two modalities, where no MultiLoReFT run exists.)"""
        return "input size" if config.size == "input" else None

    def __init__(self, dims: Dims) -> None:
        TwoModalityMethod.__init__(self, dims)
        self.dim_map = dict(dims)

    @classmethod
    def from_state(cls, config: Any, dims: Dims, state: dict[str, torch.Tensor]) -> Baseline:
        model = cls(config, dims)
        model.load_state_dict(state)
        return model


@dataclass(frozen=True)
class FitStart:
    """How contrastive, DRIM-U and APOLLO begin ``fit``: a seeded generator, the data on the device
    and a model built on it whose standardisation uses the train statistics (the supervised
    fusions differ: they build from their target and take its rows)."""

    model: Baseline
    data: MultimodalFeatures
    generator: torch.Generator
    device: torch.device
    started: float

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One split of both modalities, standardised: (n, d1), (n, d2)."""
        return self.model.standardized(*self.model.pair(self.data.split(name)))


def start_fit(data: MultimodalFeatures, config: BaselineConfig, seed: int,
              build: Callable[[MultimodalFeatures], Baseline]) -> FitStart:
    """Seed, move ``data`` to the config's device, ``build`` the model from it (after seeding, so
    its initialisation is the seed's) and fit its scaler on the train rows. A minibatch larger
    than the train split is refused first."""
    started = time.perf_counter()
    generator = seed_everything(seed)
    device = resolve_device(config.device)
    data = data.to(device)
    model = build(data).to(device)
    check_minibatch(model.name, config.minibatch_size, len(data.split_index["train"]), data.dataset)
    model.fit_scaler(*model.pair(data.split("train")))
    return FitStart(model, data, generator, device, started)


def train_one_stage(model: Sized, config: BaselineConfig, step: StepFn, validate: ValidateFn, n_train: int,
                    generator: torch.Generator, device: torch.device, progress: ProgressFn | None, started: float,
                    **record: Any) -> tuple[Baseline, dict[str, Any]]:
    """Train with the config's schedule (one stage of ``train_epochs``, one CPU thread) and return
    the model with its history record, training curves included (``record`` adds method-specific
    entries)."""
    curves = Curves()
    with single_cpu_thread(device):
        history = train_epochs(model, step, n_train, batch_size=config.minibatch_size, max_epochs=config.max_epochs,
                               patience=config.patience, min_rel_improvement=config.min_rel_improvement,
                               generator=generator, device=device, curves=curves, validate=validate,
                               progress=progress)
    return model, {"stage_history": [history], "epochs": history["epochs"], CURVES: curves.rows(), **record,
                   "sizes": list(check_sizes(config, model.dim_map)),
                   "timings": {"train_s": time.perf_counter() - started}}
