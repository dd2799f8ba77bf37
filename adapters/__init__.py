"""Adapter methods trained on cached features. Imports `mmpipe.store` only, never `pipeline`."""
