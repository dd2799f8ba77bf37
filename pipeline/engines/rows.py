"""Rows to batches: decoding one row (in whatever process decodes) and planning the batches.

A planning chunk's rows are sorted by length (longest first) and cut into batches, so similar
lengths share a batch (little padding) and a chunk's batches never depend on other chunks: a
resumed run, or another engine, forms exactly the batches an uninterrupted local run would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Item:
    row: int
    inputs: dict[str, torch.Tensor] | None
    error: str | None
    seconds: float


def decode_row(row: int, source: Any, preparer: Any, known: dict[int, str]) -> Item:
    """Row -> decoded, preprocessed inputs, or the error that stopped it. Rows the dataset declares
    unusable (``known``: row -> reason) fail with that reason, without being opened."""
    if row in known:
        return Item(row, None, known[row], 0.0)
    started = time.perf_counter()
    try:
        inputs = preparer(source)
    except Exception as error:  # a bad file must not stop the run: it is recorded and masked
        message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        return Item(row, None, message, time.perf_counter() - started)
    return Item(row, inputs, None, time.perf_counter() - started)


class RowDataset(torch.utils.data.Dataset):
    """Row index -> `decode_row` (a map-style dataset for DataLoader workers)."""

    def __init__(self, sources: list[Any], preparer: Any, known: dict[int, str] | None = None) -> None:
        self.sources, self.preparer, self.known = sources, preparer, known or {}

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, row: int) -> Item:
        return decode_row(row, self.sources[row], self.preparer, self.known)


@dataclass
class Batch:
    rows: list[int]  # every row of the batch, valid or not
    valid_rows: list[int]  # rows whose inputs are in ``inputs``, same order
    inputs: dict[str, torch.Tensor] | None
    errors: dict[int, str]
    decode_s: float

    def pin_memory(self) -> Batch:  # DataLoader(pin_memory=True) calls this in its pinning thread
        if self.inputs is not None:
            self.inputs = {k: v.pin_memory() for k, v in self.inputs.items()}
        return self


@dataclass(frozen=True)
class Collate:
    preparer: Any

    def __call__(self, items: list[Item]) -> Batch:
        good = [item for item in items if item.inputs is not None]
        inputs = self.preparer.collate([item.inputs for item in good]) if good else None
        return Batch([item.row for item in items], [item.row for item in good], inputs,
                     {item.row: item.error for item in items if item.error is not None},
                     sum(item.seconds for item in items))


def plan_chunk(rows: range, lengths: list[int], batch_size: int) -> list[list[int]]:
    """Batches of one chunk: rows sorted by length, longest first (ties by row), then cut."""
    order = sorted(rows, key=lambda r: (-lengths[r - rows.start], r))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def chunk_lengths(rows: range, sources: list[Any], preparer: Any, known: dict[int, str]) -> list[int]:
    """The preparer's cheap length of each row (file headers, token counts); 0 for unusable rows."""
    return [0 if r in known else preparer.length(sources[r]) for r in rows]


class BatchPlan:
    """The batch sampler: plans each chunk only when the loader reaches it (lengths come from file
    headers, so a huge dataset starts at once)."""

    def __init__(self, chunks: list[range], sources: list[Any], preparer: Any, batch_size: int,
                 known: dict[int, str] | None = None) -> None:
        self.chunks, self.sources, self.preparer, self.batch_size = chunks, sources, preparer, batch_size
        self.known = known or {}

    def __iter__(self) -> Iterator[list[int]]:
        for rows in self.chunks:
            yield from plan_chunk(rows, chunk_lengths(rows, self.sources, self.preparer, self.known), self.batch_size)

    def __len__(self) -> int:
        return sum(-(-len(rows) // self.batch_size) for rows in self.chunks)
