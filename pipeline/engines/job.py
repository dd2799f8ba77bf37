"""What an engine is given: the encoder, the rows to encode in planning chunks, and the writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console

from mmpipe.pipeline.encoders.base import Encoder
from mmpipe.pipeline.engines.assemble import Assembler, Request


@dataclass
class Job:
    encoder: Encoder  # loaded on ``device`` (the local engine) or to be loaded by each actor (ray)
    weights: Any  # what ``encoder.load`` reads (a path, or None for the hub / torchvision default)
    device: torch.device
    preparer: Any
    sources: list[Any]  # per manifest row: a media path or a text
    known: dict[int, str]  # rows the dataset declares unusable -> why
    chunks: list[range]  # planning chunks, in row order
    batch_size: int
    num_workers: int
    request: Request
    assembler: Assembler
    description: str  # the progress bar's label
    console: Console
    show_progress: bool

    @property
    def total_rows(self) -> int:
        return sum(len(rows) for rows in self.chunks)
