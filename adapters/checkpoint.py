"""Rebuild a published run's trained model from its checkpoint."""

from __future__ import annotations

from torch import nn

from mmpipe.adapters.registry import METHODS
from mmpipe.store.runs import RunEntry


def load_model(run: RunEntry) -> nn.Module:
    cls = METHODS.get(run.method)
    config = cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in run.record.config.items()})
    return cls.from_state(config, run.record.dims, run.state_dict())
