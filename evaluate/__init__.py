"""Probes, Δ, results rows and reports. Imports `mmpipe.store` and `mmpipe.adapters`."""
