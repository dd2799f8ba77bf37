"""The epoch loop the baselines share: device-resident minibatches by index, a method-specific
step, validation after every epoch, early stopping on a plateau (`Plateau`), and the weights of
the best validation epoch restored at the end.

Without a validation function (APOLLO's latent optimisation, which has no latents for val rows)
the plateau is read on the epoch's mean training loss and the final weights are kept. An epoch
whose training or validation loss is NaN or infinite stops the fit (`check_finite`).

A step (and the validation) returns its loss as one number, or as named terms of which ``loss``
(`curves.LOSS`) is the one trained on (monitored); the others are only recorded. Every epoch's
mean train terms and validation terms go to the fit's `Curves` (adapters/curves.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from mmpipe.adapters.base import ProgressFn
from mmpipe.adapters.curves import LOSS, Curves
from mmpipe.adapters.progress import epoch_done
from mmpipe.adapters.training import Plateau, check_finite, minibatches

Losses = float | Mapping[str, float]  # one loss, or named terms with LOSS the one trained on / monitored
StepFn = Callable[[torch.Tensor], Losses]  # (B,) row indices into the train tensors → the step's loss
ValidateFn = Callable[[], Losses]


def loss_terms(value: Losses) -> dict[str, float]:
    """A step's or a validation's return as named terms (one number: term ``loss``)."""
    return {k: float(v) for k, v in value.items()} if isinstance(value, Mapping) else {LOSS: float(value)}


def train_epochs(model: nn.Module, step: StepFn, n_train: int, *, batch_size: int, max_epochs: int, patience: int,
                 min_rel_improvement: float, generator: torch.Generator, device: torch.device,
                 curves: Curves, validate: ValidateFn | None = None, progress: ProgressFn | None = None,
                 stage: str = "train") -> dict[str, Any]:
    """Run up to ``max_epochs`` epochs of ``step`` over shuffled train minibatches, recording each
    epoch's train (and val) terms in ``curves``.

    Returns the stage history: epochs run, why it stopped and the best epoch.
    """
    plateau = Plateau(patience, min_rel_improvement)
    train_losses: list[float] = []
    val_losses: list[float] = []
    best_state, best_epoch, reason = None, 0, "epoch cap"
    for epoch in range(1, max_epochs + 1):
        model.train()
        totals: dict[str, float] = {}
        steps = 0
        for index in minibatches(n_train, batch_size, generator, device):
            for term, value in loss_terms(step(index)).items():
                totals[term] = totals.get(term, 0.0) + value
            steps += 1
        train = {term: total / max(steps, 1) for term, total in totals.items()} or {LOSS: 0.0}
        train_losses.append(train[LOSS])
        curves.add(stage, epoch, "train", train)
        method = getattr(model, "name", type(model).__name__)
        check_finite(method, {"train": train_losses[-1]}, epoch, stage)
        if validate is not None:
            model.eval()
            with torch.no_grad():
                val = loss_terms(validate())
            monitored = val[LOSS]
            check_finite(method, {"validation": monitored}, epoch, stage)
            val_losses.append(monitored)
            curves.add(stage, epoch, "val", val)
            if monitored < plateau.best:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_epoch = epoch
        else:
            monitored = train_losses[-1]
            best_epoch = epoch
        converged = plateau.update(monitored)
        epoch_done(stage, epoch, max_epochs, converged)
        if progress is not None and (epoch % 10 == 0 or converged):
            progress(f"{stage} epoch {epoch}: train {train_losses[-1]:.4f}"
                     + (f" val {val_losses[-1]:.4f}" if val_losses else ""))
        if converged:
            reason = "converged"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"stage": stage, "epochs": len(train_losses), "reason": reason, "best_epoch": best_epoch}
