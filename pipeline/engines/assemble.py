"""Encoded batches to stored chunks: the forward of one batch, and the single writer that gathers
rows into the chunks of every entry an extraction writes.

An extraction writes one or two entries in one pass over the data: the pooled features (with any
``--layers``) and, with ``--sequence``, the last layer's sequence. Each entry has its own chunking
(a sequence row is much larger, so its chunks hold fewer rows) and its own finished chunks (a
resumed run may find one entry published and the other half-written). Rows are planned in
*planning chunks*, the finer of the two chunkings over the rows still pending in either entry;
each encoded row goes to every entry whose chunk holding it is pending, and a chunk is written
as soon as its last row arrives, its progress marker last.

A row whose media failed, or whose output is not finite in the stored dtype, is a failure in
every entry (valid=False, the reason in the entry's meta.json): never a stored value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from mmpipe.pipeline.encoders.base import Encoder
from mmpipe.pipeline.windows import window_mean
from mmpipe.store.features import FeatureWriter


@dataclass(frozen=True)
class Request:
    """What each batch's forward must produce."""

    layers: tuple[int, ...]  # hidden layers stored as extras of the pooled entry
    sequence: bool  # the last layer's sequence too
    max_steps: int | None  # sequences longer than this are averaged over equal windows
    dtype: str  # the stored dtype, whose range every value must fit


@dataclass
class Encoded:
    """One batch's outputs on the CPU, in float32, row by row in ``rows`` order."""

    rows: list[int]
    pooled: np.ndarray  # (b, D)
    layers: dict[str, np.ndarray]  # "layer<k>" -> (b, D_k)
    sequence: np.ndarray | None  # (b, S, D), zero past each row's steps
    steps: np.ndarray | None  # (b,) int
    problems: list[str | None]  # per row: why it cannot be stored, or None


def storable(outputs: dict[str, np.ndarray], dtype: str) -> list[str | None]:
    """Per row of a batch's outputs: None when every value is finite in the stored ``dtype``, else
    why not (an encoder's NaN/Inf, or a value beyond float16's range, which would store as Inf)."""
    limit = float(np.finfo(dtype).max)
    problems: list[str | None] = [None] * len(next(iter(outputs.values())))
    for name, values in outputs.items():
        flat = values.reshape(len(values), -1)  # (b, D) or (b, T * D)
        nonfinite = ~np.isfinite(flat).all(axis=1)
        beyond = ~nonfinite & (np.abs(flat) > limit).any(axis=1)
        for position in np.flatnonzero(nonfinite | beyond):
            if problems[position] is None:
                problems[position] = (f"the encoder's {name} holds NaN or Inf" if nonfinite[position] else
                                      f"the encoder's {name} exceeds the {dtype} range (extract with --dtype float32)")
    return problems


def encode_batch(encoder: Encoder, inputs: dict[str, torch.Tensor], rows: list[int], request: Request) -> Encoded:
    """The forward of one collated batch already on the encoder's device, brought to the CPU."""
    output = encoder.encode(inputs, request.layers)
    pooled = output.pooled.float().cpu().numpy()  # (b, D): also synchronises the device
    layers = {f"layer{k}": v.float().cpu().numpy() for k, v in output.layers.items()}
    sequence = steps = None
    if request.sequence:
        windows, counts = window_mean(output.sequence, output.steps, request.max_steps)  # (b, S, D), (b,)
        sequence, steps = windows.cpu().numpy(), counts.cpu().numpy()
    checked = {"output": pooled, **layers, **({"sequence": sequence} if sequence is not None else {})}
    return Encoded(rows, pooled, layers, sequence, steps, storable(checked, request.dtype))


@dataclass
class ChunkBuffer:
    index: int
    rows: range
    arrays: dict[str, np.ndarray]  # "data", extras, and "lengths" for sequences; float32 rows
    valid: np.ndarray  # (n,) bool
    failures: list[dict[str, Any]] = field(default_factory=list)
    remaining: int = 0


@dataclass
class Output:
    """One entry being written: ``pooled`` rows (+ layer extras) or the ``sequence`` rows."""

    writer: FeatureWriter
    kind: Literal["pooled", "sequence"]
    buffers: dict[int, ChunkBuffer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pending = set(self.writer.pending_chunks())
        self.resumed = self.writer.n_chunks - len(self.pending)

    def chunk_of(self, row: int) -> int:
        return row // self.writer.chunk_rows

    def buffer(self, index: int) -> ChunkBuffer:
        if index not in self.buffers:
            rows = range(*self.writer.chunk_bounds(index))
            shapes = {"data": self.writer.row_shape, **self.writer.extras}
            arrays = {name: np.zeros((len(rows), *shape), np.float32) for name, shape in shapes.items()}
            if self.kind == "sequence":
                arrays["lengths"] = np.zeros(len(rows), np.int32)
            self.buffers[index] = ChunkBuffer(index, rows, arrays, np.zeros(len(rows), bool), remaining=len(rows))
        return self.buffers[index]


class Assembler:
    """The single writer: takes every batch's rows, in any order, and writes each finished chunk."""

    def __init__(self, outputs: list[Output], sample_ids: list[str]) -> None:
        self.outputs, self.sample_ids = outputs, sample_ids
        self.write_s = 0.0

    def planning_chunks(self) -> list[range]:
        """Row ranges of the finer chunking that hold a row pending in any entry, in row order."""
        active = [o for o in self.outputs if o.pending]
        if not active:
            return []
        size = min(o.writer.chunk_rows for o in active)
        n_rows = active[0].writer.n_rows
        chunks = [range(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
        return [rows for rows in chunks
                if any(o.chunk_of(r) in o.pending for o in active for r in (rows.start, rows.stop - 1))]

    def add(self, rows: list[int], encoded: Encoded | None, errors: dict[int, str]) -> None:
        """One batch: ``rows`` all its rows, ``encoded`` the outputs of those that decoded, ``errors``
        row -> why the others did not."""
        position = {row: i for i, row in enumerate(encoded.rows)} if encoded is not None else {}
        for row in rows:
            problem = errors.get(row)
            if problem is None and encoded is not None:
                problem = encoded.problems[position[row]]
            for output in self.outputs:
                index = output.chunk_of(row)
                if index not in output.pending:
                    continue
                buffer = output.buffer(index)
                offset = row - buffer.rows.start
                failure = problem or self._too_long(output, encoded, position.get(row))
                if failure is not None:
                    buffer.failures.append({"sample_id": self.sample_ids[row], "row": row, "error": failure})
                else:
                    self._place(output, buffer, offset, encoded, position[row])
                buffer.remaining -= 1
                if buffer.remaining == 0:
                    self._write(output, buffer)

    @staticmethod
    def _too_long(output: Output, encoded: Encoded | None, i: int | None) -> str | None:
        """A sequence with more steps than the entry was planned for (from the file's header)."""
        if output.kind != "sequence" or encoded is None or i is None or encoded.steps[i] <= output.writer.steps:
            return None
        return (f"the encoder's sequence has {int(encoded.steps[i])} steps, more than the {output.writer.steps} "
                f"planned from the file's header")

    def _place(self, output: Output, buffer: ChunkBuffer, offset: int, encoded: Encoded, i: int) -> None:
        buffer.valid[offset] = True
        if output.kind == "pooled":
            buffer.arrays["data"][offset] = encoded.pooled[i]
            for name, values in encoded.layers.items():
                buffer.arrays[name][offset] = values[i]
            return
        steps = int(encoded.steps[i])
        buffer.arrays["data"][offset, :steps] = encoded.sequence[i, :steps]
        buffer.arrays["lengths"][offset] = steps

    def _write(self, output: Output, buffer: ChunkBuffer) -> None:
        started = time.perf_counter()
        buffer.failures.sort(key=lambda f: f["row"])
        arrays = dict(buffer.arrays)
        data, lengths = arrays.pop("data"), arrays.pop("lengths", None)
        output.writer.write_chunk(buffer.index, data, valid=buffer.valid, failures=buffer.failures, extras=arrays,
                                  lengths=lengths)
        del output.buffers[buffer.index]
        output.pending.discard(buffer.index)
        self.write_s += time.perf_counter() - started

    def unfinished(self) -> list[str]:
        """Entries with chunks not written (an engine that stopped early)."""
        return [o.writer.name for o in self.outputs if o.pending]
