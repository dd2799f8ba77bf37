"""Registered datasets: importing this package registers every dataset (one import line each)."""

from mmpipe.pipeline.datasets import cremad, flickr30k_multi, folder, sim1, sim2, simseq  # noqa: F401
from mmpipe.pipeline.datasets.base import DATASETS, Dataset, Simulation

__all__ = ["DATASETS", "Dataset", "Simulation"]
