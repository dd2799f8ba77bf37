"""The training schedule of the MMSA code base (which DLF's public code follows): Adam, gradients
accumulated over several minibatches and value-clipped after every backward pass, the learning
rate halved on a validation plateau, early stopping, and the best validation epoch restored.

Per epoch, over a fresh permutation of the train rows in full minibatches of ``minibatch_size``::

    for each group of ``accumulate`` consecutive minibatches b_1..b_a:
        g ← 0;  for b in b_1..b_a:  g ← clip(g + ∇ L(b), ±clip_value)     (clip after each backward)
        θ ← Adam(θ, g)                                                     (one update per group)
    v ← validate()                        (the monitored validation loss; lower is better)
    lr ← factor · lr  when v has not improved for more than ``plateau_patience`` epochs
                      (torch's ReduceLROnPlateau: mode min, relative threshold 1e-4)
    best ← v, θ* ← θ  when v ≤ best − ``min_improvement``
    stop              when ``early_stop`` epochs have passed since the best one (or at ``max_epochs``)
    finally θ ← θ*

Gradients are summed over the group, not averaged (each minibatch loss is its own mean), as the
code does. Leftover minibatches: an epoch of n full minibatches makes ⌊n / accumulate⌋ updates;
the code runs the last n mod accumulate minibatches forward and backward and then discards their
gradients (zeroed when the next epoch starts), so they never change a parameter. Here they are not
run at all: the parameters are the same, only the dropout draws for the following batches differ
from a run that spent random numbers on them. (The code's loader also keeps a short last
minibatch; here every minibatch is full, `adapters.training.minibatches`.)

A fit whose train or validation loss becomes NaN or infinite stops with the loss named
(`check_finite`). Every epoch's mean train terms and the validation loss (one number: term ``loss``,
or named terms of which ``loss`` is the monitored one) are the fit's training curves
(`adapters/curves.py`, stage ``train``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmpipe.adapters.base import ProgressFn
from mmpipe.adapters.curves import HISTORY_KEY as CURVES
from mmpipe.adapters.curves import LOSS, Curves
from mmpipe.adapters.loop import Losses, loss_terms
from mmpipe.adapters.progress import epoch_done
from mmpipe.adapters.training import check_finite, minibatches
from mmpipe.store.errors import UserError

# (B,) train row indices → {loss name: scalar}; "total" is the one differentiated
LossFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
ValidateFn = Callable[[], Losses]  # the monitored validation loss (or terms, LOSS monitored), eval mode, no grad


@dataclass(frozen=True)
class Schedule:
    lr: float
    minibatch_size: int
    accumulate: int
    clip_value: float | None  # None: no clipping
    plateau_factor: float
    plateau_patience: int
    early_stop: int
    min_improvement: float
    max_epochs: int

    def updates_per_epoch(self, n_train: int) -> int:
        return (n_train // self.minibatch_size) // self.accumulate

    def check(self, method: str, n_train: int) -> None:
        """Refuse (one line) a schedule that would never update a parameter on ``n_train`` rows."""
        batches = n_train // self.minibatch_size
        if batches < self.accumulate:
            raise UserError(f"{method}: {n_train} train rows make {batches} full minibatches of {self.minibatch_size} "
                            f"per epoch, fewer than accumulate={self.accumulate}: no update would ever be made; "
                            f"lower accumulate (at most {max(batches, 1)}) or minibatch_size")


def train_accumulated(model: nn.Module, parameters: Iterable[nn.Parameter], loss_fn: LossFn,
                      validate: ValidateFn, n_train: int, schedule: Schedule, *, generator: torch.Generator,
                      device: torch.device, progress: ProgressFn | None = None, method: str = "") -> dict[str, Any]:
    """Run the schedule (module docstring); returns the history: epochs run, why it stopped, the
    best epoch and its validation loss, per epoch the learning rate it ran with, and the training
    curves (per epoch the mean train losses over the minibatches trained on, and the validation
    loss)."""
    params = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=schedule.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=schedule.plateau_factor,
                                                         patience=schedule.plateau_patience)
    used = schedule.updates_per_epoch(n_train) * schedule.accumulate  # minibatches that reach an update
    best, best_epoch, best_state = float("inf"), 0, None
    rows: list[dict[str, Any]] = []
    curves = Curves()
    reason = "epoch cap"
    for epoch in range(1, schedule.max_epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        sums: dict[str, torch.Tensor] = {}
        optimizer.zero_grad(set_to_none=True)
        for count, index in enumerate(minibatches(n_train, schedule.minibatch_size, generator, device), start=1):
            if count > used:
                break
            losses = loss_fn(index)
            losses["total"].backward()
            if schedule.clip_value is not None:
                nn.utils.clip_grad_value_(params, schedule.clip_value)
            if count % schedule.accumulate == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach()
        train = {name: float(total) / max(used, 1) for name, total in sums.items()}
        check_finite(method, train, epoch, "train")
        model.eval()
        with torch.no_grad():
            val_terms = loss_terms(validate())
        val = val_terms[LOSS]
        check_finite(method, {"validation": val}, epoch, "train")
        curves.add("train", epoch, "train", train)
        curves.add("train", epoch, "val", val_terms)
        plateau.step(val)
        if val <= best - schedule.min_improvement:
            best, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        rows.append({"epoch": epoch, "lr": lr})
        stopping = epoch - best_epoch >= schedule.early_stop
        epoch_done("train", epoch, schedule.max_epochs, stopping)
        if progress is not None and (epoch % 5 == 0 or stopping):
            progress(f"epoch {epoch}: train {train.get('total', float('nan')):.4f} val {val:.4f} lr {lr:.2e}")
        if stopping:
            reason = "early stop"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"epochs": len(rows), "reason": reason, "best_epoch": best_epoch, "best_val": best,
            "updates_per_epoch": schedule.updates_per_epoch(n_train),
            "minibatches_skipped_per_epoch": n_train // schedule.minibatch_size - used, "epoch_history": rows,
            CURVES: curves.rows()}
