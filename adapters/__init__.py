"""Adapter methods trained on cached features. Imports `mmpipe.store` only, never `pipeline`.

Importing this package registers every method (one import line each).
"""

from mmpipe.adapters import multiloreft  # noqa: F401
from mmpipe.adapters.registry import METHODS

__all__ = ["METHODS"]
