"""The adapter-method registry. Methods register here; `mmpipe list methods` reads it."""

from __future__ import annotations

from mmpipe.store.registry import Registry

METHODS: Registry[type] = Registry("method")
