"""Adapter methods trained on cached features. Imports `mmpipe.store` only, never `pipeline`.

Importing this package registers every method (one import line each).
"""

from mmpipe.adapters import (  # noqa: F401
    apollo,
    contrastive,
    cross_attention,
    drimu,
    inputs,
    late_fusion,
    mult_interactions,
    multiloreft,
)
from mmpipe.adapters.registry import METHODS

__all__ = ["METHODS"]
