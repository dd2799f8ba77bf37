"""The encoder registry. Encoders (issue #5) register here; `mmpipe list encoders` reads it."""

from __future__ import annotations

from mmpipe.store.registry import Registry

ENCODERS: Registry[type] = Registry("encoder")
