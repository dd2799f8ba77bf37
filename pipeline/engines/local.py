"""The local engine: decoding in DataLoader worker processes, the encoder in this process.

Batches arrive pinned (CUDA) and are copied with ``non_blocking=True``; the encoder runs under
``torch.inference_mode()``, with bf16 (or fp16) autocast on CUDA and plain fp32 on CPU. Workers
use one thread each (they must not compete with the encoder for every core) and die with this
process.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch.utils.data import DataLoader

from mmpipe.pipeline.engines.assemble import encode_batch
from mmpipe.pipeline.engines.job import Job
from mmpipe.pipeline.engines.rows import BatchPlan, Collate, RowDataset
from mmpipe.pipeline.workers import die_with_parent


class ClipRate(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} clips/s" if speed else "-- clips/s")


def progress_bar(console: Console, show: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), ClipRate(),
                    TimeRemainingColumn(), console=console, disable=not show, transient=False)


def autocast(device: torch.device) -> tuple[Any, str]:
    """The forward's precision: (context, name); bf16 (or fp16) autocast on CUDA, fp32 elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext(), "float32"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype), str(dtype).removeprefix("torch.")


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not compete with the encoder for every core
    # torch's own watchdog checks only every few seconds, and not while a worker is blocked
    die_with_parent(os.getppid())


def run(job: Job) -> dict[str, float]:
    """Encode every row of ``job.chunks`` into ``job.assembler``; returns the engine's timings."""
    timings = {"decode_s": 0.0, "wait_s": 0.0, "forward_s": 0.0}
    context, _ = autocast(job.device)
    workers = job.num_workers
    loader = DataLoader(
        RowDataset(job.sources, job.preparer, job.known),
        batch_sampler=BatchPlan(job.chunks, job.sources, job.preparer, job.batch_size, job.known),
        collate_fn=Collate(job.preparer), num_workers=workers, pin_memory=job.device.type == "cuda",
        worker_init_fn=_single_thread_worker if workers else None, prefetch_factor=4 if workers else None)
    with progress_bar(job.console, job.show_progress) as progress:
        task = progress.add_task(job.description, total=job.total_rows)
        waited = time.perf_counter()
        for batch in loader:
            timings["wait_s"] += time.perf_counter() - waited
            timings["decode_s"] += batch.decode_s
            encoded = None
            if batch.inputs is not None:
                started = time.perf_counter()
                inputs = {k: v.to(job.device, non_blocking=True) for k, v in batch.inputs.items()}
                with context:
                    encoded = encode_batch(job.encoder, inputs, batch.valid_rows, job.request)
                timings["forward_s"] += time.perf_counter() - started
            job.assembler.add(batch.rows, encoded, batch.errors)
            progress.advance(task, len(batch.rows))
            waited = time.perf_counter()
    return timings
