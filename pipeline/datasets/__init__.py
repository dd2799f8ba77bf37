"""Registered datasets: importing this package registers every dataset (one import line each)."""

from mmpipe.pipeline.datasets import (  # noqa: F401
    cremad,
    flickr30k_multi,
    folder,
    hf,
    mosei,
    mosi,
    mustard,
    sim1,
    sim2,
    simseq,
    urfunny,
)
from mmpipe.pipeline.datasets.base import DATASETS, Dataset, Simulation

__all__ = ["DATASETS", "Dataset", "Simulation"]
