"""The epoch loop the baselines share: device-resident minibatches by index, a method-specific
step, validation after every epoch, early stopping on a plateau (`Plateau`), and the weights of
the best validation epoch restored at the end.

Without a validation function (APOLLO's latent optimisation, which has no latents for val rows)
the plateau is read on the epoch's mean training loss and the final weights are kept. An epoch
whose training or validation loss is NaN or infinite stops the fit (`check_finite`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mmpipe.adapters.base import ProgressFn
from mmpipe.adapters.training import Plateau, check_finite, minibatches

StepFn = Callable[[torch.Tensor], float]  # (B,) row indices into the train tensors → the step's loss
ValidateFn = Callable[[], float]


def train_epochs(model: nn.Module, step: StepFn, n_train: int, *, batch_size: int, max_epochs: int, patience: int,
                 min_rel_improvement: float, generator: torch.Generator, device: torch.device,
                 validate: ValidateFn | None = None, progress: ProgressFn | None = None,
                 stage: str = "train") -> dict[str, Any]:
    """Run up to ``max_epochs`` epochs of ``step`` over shuffled train minibatches.

    Returns the stage history: epochs run, why it stopped, the best epoch and the per-epoch
    train (and val) losses.
    """
    plateau = Plateau(patience, min_rel_improvement)
    train_losses: list[float] = []
    val_losses: list[float] = []
    best_state, best_epoch, reason = None, 0, "epoch cap"
    for epoch in range(1, max_epochs + 1):
        model.train()
        total, steps = 0.0, 0
        for index in minibatches(n_train, batch_size, generator, device):
            total += step(index)
            steps += 1
        train_losses.append(total / max(steps, 1))
        method = getattr(model, "name", type(model).__name__)
        check_finite(method, {"train": train_losses[-1]}, epoch, stage)
        if validate is not None:
            model.eval()
            with torch.no_grad():
                monitored = float(validate())
            check_finite(method, {"validation": monitored}, epoch, stage)
            val_losses.append(monitored)
            if monitored < plateau.best:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_epoch = epoch
        else:
            monitored = train_losses[-1]
            best_epoch = epoch
        converged = plateau.update(monitored)
        if progress is not None and (epoch % 10 == 0 or converged):
            progress(f"{stage} epoch {epoch}: train {train_losses[-1]:.4f}"
                     + (f" val {val_losses[-1]:.4f}" if val_losses else ""))
        if converged:
            reason = "converged"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"stage": stage, "epochs": len(train_losses), "reason": reason, "best_epoch": best_epoch,
            "train_loss": train_losses, "val_loss": val_losses}
