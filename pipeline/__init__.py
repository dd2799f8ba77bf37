"""Datasets, encoders, extraction and the CLI. Imports `mmpipe.store` only (the CLI imports all)."""
