"""The supervised target of the supervised fusion baselines (late fusion, cross-attention,
multiplicative interactions).

Those methods are trained end to end on one label: by default the dataset's ``joint`` label (the
label of the paper's fusion comparison, Table 3a; Simulation I: ``y_cond``), or the label named
by ``target``. Only train labels are fitted; val labels select the epoch (early stopping); test
labels are never read here. A categorical label is fitted with cross-entropy over its classes, a
continuous one with MSE on the label standardised by its train mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmpipe.adapters.data import MultimodalFeatures
from mmpipe.store.errors import UserError


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # categorical | continuous
    n_outputs: int  # classes, or 1
    train_rows: torch.Tensor  # (n_train,) row indices into the data tensors
    train_y: torch.Tensor  # (n_train,) long codes, or float standardised values
    val_rows: torch.Tensor
    val_y: torch.Tensor

    def loss(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """prediction (B, n_outputs) against y (B,)."""
        if self.kind == "categorical":
            return F.cross_entropy(prediction, y)
        return F.mse_loss(prediction.squeeze(1), y)


def target_name(data: MultimodalFeatures, requested: str | None) -> str:
    labels = [spec.name for spec in data.manifest.labels]
    if requested is not None:
        if requested not in labels:
            raise UserError(f"unknown target {requested!r} for {data.dataset}; valid: {', '.join(labels)}")
        return requested
    joint = [spec.name for spec in data.manifest.labels if spec.owner == "joint"]
    if len(joint) != 1:
        found = "no joint label" if not joint else f"several joint labels ({', '.join(joint)})"
        raise UserError(f"{data.dataset} has {found}; choose the supervised target with --set target=LABEL "
                        f"(one of {', '.join(labels)})")
    return joint[0]


def supervised_target(data: MultimodalFeatures, requested: str | None, device: torch.device) -> Target:
    name = target_name(data, requested)
    spec = data.manifest.label(name)
    column = data.manifest.table[name]
    observed = ~pd.isna(column).to_numpy()
    rows = {split: data.split_index[split].cpu().numpy() for split in ("train", "val")}
    if spec.kind == "categorical":
        codes, classes = pd.factorize(column, sort=True)
        values = codes.astype(np.int64)
        observed &= values >= 0
        n_outputs = len(classes)
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        observed &= np.isfinite(values)
        n_outputs = 1
    rows = {split: r[observed[r]] for split, r in rows.items()}
    if len(rows["train"]) < 2 or len(rows["val"]) < 1:
        raise UserError(f"target {name}: too few labelled train/val rows ({len(rows['train'])}, {len(rows['val'])})")
    if spec.kind == "categorical":
        y = {s: torch.from_numpy(values[r]) for s, r in rows.items()}
    else:
        mean, std = values[rows["train"]].mean(), max(values[rows["train"]].std(), 1e-12)
        y = {s: torch.from_numpy((values[r] - mean) / std).float() for s, r in rows.items()}
    return Target(name, spec.kind, n_outputs, torch.from_numpy(rows["train"]).to(device), y["train"].to(device),
                  torch.from_numpy(rows["val"]).to(device), y["val"].to(device))
