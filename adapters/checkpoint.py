"""Rebuild a published run's trained model from its checkpoint."""

from __future__ import annotations

from torch import nn

from mmpipe.adapters.registry import METHODS
from mmpipe.store.runs import RunEntry


def load_model(run: RunEntry) -> nn.Module:
    cls = METHODS.get(run.method)
    return cls.from_state(cls.stored_config(run.record.config), run.record.dims, run.state_dict())
