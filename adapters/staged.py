"""Staged training: a schedule of stages, each with its own active losses, optimiser and stopping rule.

A method that trains in stages (MultiLoReFT's Algorithm 1: shared, private, joint) writes its
schedule as a list of `Stage` values and hands it to `StagedTrainer.run`; what stays inside the
method is how its losses are computed and combined and what happens after an epoch (e.g.
pruning). Per stage the trainer

- builds the stage's optimiser (``Stage.optimizer``, a factory: a hook may ask for a fresh one,
  e.g. after pruning replaced parameters);
- runs epochs of device-resident minibatches drawn by index (`minibatches`): for each batch it
  computes the stage's losses (``train_losses(index, stage.losses)``), turns them into gradients
  (``Stage.backward``: the unweighted sum by default; a method passes its own weighting, e.g.
  GradNorm) and steps the optimiser;
- after each epoch stops a diverged fit (`check_finite`: a stage loss NaN or infinite, summed over
  the epoch's batches on the device and read once, or its validation value), reads every
  validation loss (``validation_losses()``), runs the stage's hooks
  (``Stage.after_epoch``) in order, records one history row and updates a `Plateau` on the
  unweighted sum of the stage's validation losses;
- ends the stage when the plateau has lasted ``patience`` epochs ("converged") or at
  ``max_epochs`` ("epoch cap"). A stage with no active loss is skipped ("skipped: no active loss").

Epochs are counted across stages. The history (`StagedHistory`) holds one row per stage (name,
first and last epoch, why it ended, its losses), one row per epoch (epoch, stage, the
``describe()`` fields, e.g. ranks, and ``val_<loss>`` for every validation loss) and the training
curves (`adapters/curves.py`): per epoch, the mean of each trained loss over the epoch's
minibatches, every validation loss, and the loss weights of a stage that declares them
(``Stage.weights``, e.g. GradNorm's). CPU fits run on one intra-op thread (`single_cpu_thread`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmpipe.adapters.curves import Curves
from mmpipe.adapters.progress import epoch_done
from mmpipe.adapters.training import Plateau, check_finite, minibatches, single_cpu_thread

ProgressFn = Callable[[str], None]
# (B,) row indices into the train rows, the active loss names → {name: scalar loss} for those names
TrainLossesFn = Callable[[torch.Tensor, tuple[str, ...]], Mapping[str, torch.Tensor]]
ValidationFn = Callable[[], Mapping[str, float]]  # every loss on the validation rows (model in eval mode)
BackwardFn = Callable[[Mapping[str, torch.Tensor]], None]  # set .grad from the stage's losses
WeightsFn = Callable[[], Mapping[str, float]]  # loss name → its current weight in the trained loss


@dataclass
class EpochContext:
    """What a hook sees after an epoch: the stage, the epoch count so far (all stages), this epoch's
    validation losses, and the optimiser, which it may replace with `rebuild_optimizer`."""

    stage: Stage
    epoch: int
    val: Mapping[str, float]
    optimizer: torch.optim.Optimizer

    def rebuild_optimizer(self) -> None:
        """A fresh optimiser from the stage's factory (new parameters, no stale moments)."""
        self.optimizer = self.stage.optimizer()


EpochHook = Callable[[EpochContext], None]


def unweighted_sum(losses: Mapping[str, torch.Tensor]) -> None:
    """The default `Stage.backward`: ∇ Σ_i L_i."""
    sum(losses.values()).backward()


@dataclass(frozen=True)
class Stage:
    """One stage of a schedule.

    ``losses`` are the names of the losses trained (and monitored: the plateau reads the unweighted
    sum of their validation values); ``optimizer`` builds the optimiser over the parameters this
    stage trains; ``backward`` combines the losses into gradients; ``after_epoch`` hooks run after
    each epoch's validation, before the history row and the plateau (so a hook that prunes shows
    in that epoch's row); ``weights``, when the stage learns its loss weights, reads them for the
    training curves after each epoch.
    """

    name: str
    losses: tuple[str, ...]
    optimizer: Callable[[], torch.optim.Optimizer]
    patience: int
    max_epochs: int
    min_rel_improvement: float = 1e-3
    backward: BackwardFn = unweighted_sum
    after_epoch: tuple[EpochHook, ...] = ()
    weights: WeightsFn | None = None


@dataclass
class StagedHistory:
    stages: list[dict[str, Any]] = field(default_factory=list)  # one row per stage
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    curves: Curves = field(default_factory=Curves)

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)


class StagedTrainer:
    """Runs a schedule of `Stage` values over ``n_train`` train rows (see the module docstring).

    ``model`` is put in train mode for the epochs (``validation_losses`` sets eval mode itself);
    ``describe`` adds fields to every epoch's history row and progress line (e.g. the ranks).
    """

    def __init__(self, model: nn.Module, *, train_losses: TrainLossesFn, validation_losses: ValidationFn,
                 n_train: int, batch_size: int, generator: torch.Generator, device: torch.device,
                 describe: Callable[[], Mapping[str, Any]] | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.model = model
        self.train_losses, self.validation_losses = train_losses, validation_losses
        self.n_train, self.batch_size = n_train, batch_size
        self.generator, self.device = generator, device
        self.describe = describe or dict
        self.progress = progress or (lambda message: None)
        self.epoch = 0
        self.history = StagedHistory()

    def run(self, stages: Iterable[Stage]) -> StagedHistory:
        """Run the stages in order (an iterable: a schedule may build a stage when it starts)."""
        with single_cpu_thread(self.device):
            for stage in stages:
                if not stage.losses:
                    self.history.stages.append({"stage": stage.name, "start_epoch": self.epoch,
                                                "end_epoch": self.epoch, "reason": "skipped: no active loss"})
                    continue
                self.run_stage(stage)
        return self.history

    def run_stage(self, stage: Stage) -> None:
        plateau = Plateau(stage.patience, stage.min_rel_improvement)
        context = EpochContext(stage, self.epoch, {}, stage.optimizer())
        start, reason = self.epoch, "epoch cap"
        method = getattr(self.model, "name", type(self.model).__name__)
        for _ in range(stage.max_epochs):
            sums = self.train_epoch(stage, context.optimizer)
            self.epoch += 1
            context.epoch, context.val = self.epoch, self.validation_losses()
            # before the hooks: pruning cannot take the SVD of a diverged projection
            check_finite(method, {**{k: sums[k] for k in stage.losses},
                                  **{f"{k} (validation)": context.val[k] for k in stage.losses}},
                         self.epoch, stage.name)
            batches = self.n_train // self.batch_size or 1  # `minibatches`: full batches, or one short one
            self.history.curves.add(stage.name, self.epoch - start, "train", {k: v / batches for k, v in sums.items()})
            self.history.curves.add(stage.name, self.epoch - start, "val", context.val)
            if stage.weights is not None:
                self.history.curves.add(stage.name, self.epoch - start, "weight", stage.weights())
            for hook in stage.after_epoch:
                hook(context)
            described = self.describe()
            self.history.epochs.append({"epoch": self.epoch, "stage": stage.name, **described,
                                        **{f"val_{k}": v for k, v in context.val.items()}})
            converged = plateau.update(sum(context.val[name] for name in stage.losses))
            epoch_done(stage.name, self.epoch - start, stage.max_epochs, converged)
            if self.epoch % 10 == 0 or converged:
                self.progress(f"{stage.name} epoch {self.epoch}: val "
                              + " ".join(f"{k}={context.val[k]:.4f}" for k in stage.losses)
                              + "".join(f" {k}={v}" for k, v in described.items()))
            if converged:
                reason = "converged"
                break
        self.history.stages.append({"stage": stage.name, "start_epoch": start, "end_epoch": self.epoch,
                                    "reason": reason, "losses": list(stage.losses)})

    def train_epoch(self, stage: Stage, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One pass over a fresh permutation of the train rows, full batches only; returns every
        loss ``train_losses`` gave (the stage's, and any other terms it reports) summed over the
        batches, summed on the device and read once."""
        self.model.train()
        names, sums = stage.losses, None
        for index in minibatches(self.n_train, self.batch_size, self.generator, self.device):
            names, values = self.step(stage, optimizer, index)
            sums = values if sums is None else sums + values
        return dict(zip(names, sums.tolist(), strict=True)) if sums is not None else dict.fromkeys(names, 0.0)

    def step(self, stage: Stage, optimizer: torch.optim.Optimizer,
             index: torch.Tensor) -> tuple[tuple[str, ...], torch.Tensor]:
        """One optimiser step; the names of the losses ``train_losses`` gave, the stage's first,
        and their values (n,) detached."""
        losses = self.train_losses(index, stage.losses)
        optimizer.zero_grad(set_to_none=True)
        stage.backward({name: losses[name] for name in stage.losses})
        optimizer.step()
        names = (*stage.losses, *(k for k in losses if k not in stage.losses))
        return names, torch.stack([losses[name].detach() for name in names])  # (n,)
