"""Adapter methods trained on cached features. Imports `mmpipe.store` only, never `pipeline`.

``adapters/methods/`` holds the methods, one file each; the modules beside it are the machinery
they share (the method contract, inputs, component names, losses, training loops, sizes).
Importing this package registers every method.
"""

from mmpipe.adapters import methods  # noqa: F401  (registers every method)
from mmpipe.adapters.registry import METHODS

__all__ = ["METHODS"]
