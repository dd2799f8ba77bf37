"""The extraction engine: run one frozen encoder over one modality of a dataset, into the store.

Flow: build the manifest → declare the encoder spec and identify its weights → choose the
dataset's modality the encoder reads (the only one of the encoder's kind, or ``modality``) → open
the feature writer of ``<dataset>.<modality>.<encoder>`` for the key (dataset, manifest version,
modality, media column, spec, options, weights, layers, dtype).
A published entry means there is nothing to do, without loading the model. Otherwise the model
is loaded and every *pending* chunk of rows is computed:

- rows of one chunk are sorted by length (longest first) and cut into batches, so similar
  lengths share a batch (little padding) and a chunk's batches never depend on other chunks —
  a resumed run forms exactly the batches an uninterrupted run would, hence identical arrays;
- decoding and preprocessing run in DataLoader worker processes, batches arrive pinned (CUDA)
  and are copied with ``non_blocking=True``;
- the encoder runs under ``torch.inference_mode()``, with bf16 (or fp16) autocast on CUDA and
  plain fp32 on CPU;
- a chunk is written as soon as its last batch is encoded; its progress marker goes last, so a
  process killed at any moment loses at most the chunk in flight.

Rows whose media fail to decode, and rows the dataset declares absent or known broken
(``Dataset.unusable_media``), are recorded (sample_id, error) and masked (valid=False).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
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

from mmpipe.adapters.data import feature_name
from mmpipe.adapters.training import resolve_device
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.encoders.base import Encoder
from mmpipe.pipeline.workers import die_with_parent
from mmpipe.store.errors import UserError
from mmpipe.store.features import FeatureEntry
from mmpipe.store.manifest import Manifest, Modality
from mmpipe.store.ranges import DEVICE, MAX_ROWS, Checked, at_least, between
from mmpipe.store.root import Store


@dataclass(frozen=True)
class ExtractOptions(Checked):
    dtype: Literal["float16", "float32"] = "float16"  # the store's DTYPES
    layers: Annotated[tuple[int, ...], at_least(0)] = ()  # below the encoder's layer count
    batch_size: Annotated[int, between(1, 2**16)] = 16
    num_workers: Annotated[int, between(0, 256)] = 2
    device: Annotated[str, DEVICE] = "auto"
    chunk_rows: Annotated[int | None, between(1, MAX_ROWS)] = None  # None: the store's default (~1.5 MiB of rows)
    modality: str | None = None  # a modality name of the dataset; None: the only one of the encoder's kind


@dataclass
class ExtractResult:
    entry: FeatureEntry
    created: bool  # False: the entry was already stored and nothing ran
    chunks_resumed: int = 0  # finished chunks found from an interrupted run, not recomputed
    chunks_computed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


def choose_modality(manifest: Manifest, kind: str, requested: str | None) -> Modality:
    """The dataset's modality whose media the encoder's kind (audio, video, ...) reads: ``requested``
    if given (it must have media of that kind), else the only one of that kind."""
    with_media = [m for m in manifest.modalities if m.column is not None]
    of_kind = [m for m in with_media if m.kind == kind]
    if requested is not None:
        chosen = manifest.modality(requested)  # an unknown name lists the valid ones
        if chosen.column is None:
            raise UserError(f"{manifest.dataset} {requested} has no media to extract (its features are given)")
        if chosen.kind != kind:
            choices = ", ".join(m.name for m in of_kind) or "none"
            raise UserError(f"{manifest.dataset} {requested} is {chosen.kind}, but the encoder reads {kind}; "
                            f"{manifest.dataset} modalities of kind {kind}: {choices}")
        return chosen
    if not of_kind:
        described = ", ".join(f"{m.name} ({m.kind})" for m in with_media) or "no media"
        raise UserError(f"the encoder reads {kind}, but {manifest.dataset} has {described}")
    if len(of_kind) > 1:
        names = [m.name for m in of_kind]
        raise UserError(f"{manifest.dataset} has {kind} in {len(names)} modalities ({', '.join(names)}); choose "
                        f"one with --set modality=NAME")
    return of_kind[0]


# -- worker side -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    row: int
    inputs: dict[str, torch.Tensor] | None
    error: str | None
    seconds: float


class RowDataset(torch.utils.data.Dataset):
    """Row index -> decoded, preprocessed inputs (or the error that stopped it). Rows the dataset
    declares unusable (``known``: row -> reason) fail with that reason, without being opened."""

    def __init__(self, sources: list[Any], preparer: Any, known: dict[int, str] | None = None) -> None:
        self.sources, self.preparer, self.known = sources, preparer, known or {}

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, row: int) -> Item:
        if row in self.known:
            return Item(row, None, self.known[row], 0.0)
        started = time.perf_counter()
        try:
            inputs = self.preparer(self.sources[row])
        except Exception as error:  # a bad file must not stop the run: it is recorded and masked
            message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            return Item(row, None, message, time.perf_counter() - started)
        return Item(row, inputs, None, time.perf_counter() - started)


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


def _storable(pooled: np.ndarray, layers: dict[str, np.ndarray], dtype: str) -> list[str | None]:
    """Per row of a batch's outputs: None when every value is finite in the stored ``dtype``, else
    why not (an encoder's NaN/Inf, or a value beyond float16's range, which would store as Inf)."""
    limit = float(np.finfo(dtype).max)
    problems: list[str | None] = [None] * len(pooled)
    for name, values in {"output": pooled, **layers}.items():
        flat = values.reshape(len(values), -1)  # (b, D) or (b, T * D)
        nonfinite = ~np.isfinite(flat).all(axis=1)
        beyond = ~nonfinite & (np.abs(flat) > limit).any(axis=1)
        for position in np.flatnonzero(nonfinite | beyond):
            if problems[position] is None:
                problems[position] = (f"the encoder's {name} holds NaN or Inf" if nonfinite[position] else
                                      f"the encoder's {name} exceeds the {dtype} range (extract with --dtype float32)")
    return problems


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not compete with the encoder for every core
    # torch's own watchdog checks only every few seconds, and not while a worker is blocked
    die_with_parent(os.getppid())


# -- planning ----------------------------------------------------------------------------------
def plan_chunk(rows: range, lengths: list[int], batch_size: int) -> list[list[int]]:
    """Batches of one chunk: rows sorted by length, longest first (ties by row), then cut."""
    order = sorted(rows, key=lambda r: (-lengths[r - rows.start], r))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class BatchPlan:
    """The batch sampler: plans each pending chunk only when the loader reaches it (lengths come
    from file headers, so a huge dataset starts at once)."""

    def __init__(self, chunks: list[tuple[int, range]], sources: list[Any], preparer: Any, batch_size: int,
                 known: dict[int, str] | None = None) -> None:
        self.chunks, self.sources, self.preparer, self.batch_size = chunks, sources, preparer, batch_size
        self.known = known or {}

    def __iter__(self) -> Iterator[list[int]]:
        for _, rows in self.chunks:
            lengths = [0 if r in self.known else self.preparer.length(self.sources[r]) for r in rows]
            yield from plan_chunk(rows, lengths, self.batch_size)

    def __len__(self) -> int:
        return sum(-(-len(rows) // self.batch_size) for _, rows in self.chunks)


# -- main side ---------------------------------------------------------------------------------
@dataclass
class ChunkBuffer:
    index: int
    rows: range
    data: np.ndarray  # (n, D) float32
    valid: np.ndarray  # (n,) bool
    extras: dict[str, np.ndarray]
    failures: list[dict[str, Any]] = field(default_factory=list)
    remaining: int = 0


class ClipRate(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} clips/s" if speed else "-- clips/s")


def _autocast(device: torch.device) -> tuple[Any, str]:
    if device.type != "cuda":
        return contextlib.nullcontext(), "float32"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype), str(dtype).removeprefix("torch.")


def media_sources(values: list[Any], kind: str, root: Path | None) -> list[Any]:
    """Texts as they are; media paths relative to ``root`` (the dataset's media root) made absolute.

    Manifests hold relative paths, so the fingerprint does not depend on where the tree lies;
    only here, at read time, does the location enter.
    """
    if kind == "text":
        return values
    base = root if root is not None else Path(".")
    return [str(base / v) if isinstance(v, str) and v and not Path(v).is_absolute() else v for v in values]


def feature_key(dataset: str, version: str, modality: str, column: str, spec: Any, weights: dict[str, Any],
                options: ExtractOptions) -> dict[str, Any]:
    """Key material; device, batch size and workers change speed, not results, and stay out."""
    return {"dataset": dataset, "manifest_version": version, "modality": modality, "media_column": column,
            "encoder": asdict(spec), "weights": weights, "layers": list(options.layers), "dtype": options.dtype}


def extract(store: Store, dataset_name: str, dataset_config: Any, encoder: Encoder, *, weights: Path | None = None,
            options: ExtractOptions = ExtractOptions(), console: Console | None = None,
            show_progress: bool = True) -> ExtractResult:
    """Extract ``encoder`` features of one dataset modality into ``store``; resumable and idempotent."""
    console = console or Console(stderr=True)
    device = resolve_device(options.device)
    dataset = DATASETS.get(dataset_name)()
    manifest = dataset.manifest(dataset_config)
    spec = encoder.spec(weights)
    spec.check_layers(options.layers)
    chosen = choose_modality(manifest, spec.modality, options.modality)
    modality, column = chosen.name, chosen.column
    version = store.save_manifest(manifest)
    if weights is None:
        identity = encoder.weights_identity(weights)
    else:  # hashing a local checkpoint reads all of it: memoised while its files' size and mtime hold
        identity = store.stat_memo.get(f"weights-identity/{encoder.name}", Path(weights),
                                       lambda: encoder.weights_identity(weights))
    key = feature_key(dataset_name, version, modality, column, spec, identity, options)
    name = feature_name(dataset_name, modality, encoder.name)
    extras = {f"layer{k}": (spec.layer_dims[k],) for k in options.layers}
    with store.writer(name, key, n_rows=len(manifest), dim=spec.dim, dtype=options.dtype, extras=extras,
                      chunk_rows=options.chunk_rows) as writer:
        if writer.existing is not None:
            return ExtractResult(writer.existing, created=False, failures=writer.existing.failures())
        pending = writer.pending_chunks()
        resumed = writer.n_chunks - len(pending)
        started = time.perf_counter()
        encoder.load(device, weights)
        load_s = time.perf_counter() - started
        preparer = encoder.preparer()
        sources = media_sources(manifest.table[column].tolist(), spec.modality,
                                dataset.media_root(dataset_config, modality))
        known = dataset.unusable_media(manifest, modality)
        sample_ids = manifest.table["sample_id"].tolist()
        chunks = [(index, range(*writer.chunk_bounds(index))) for index in pending]
        timings = {"load_s": load_s, "decode_s": 0.0, "wait_s": 0.0, "forward_s": 0.0, "write_s": 0.0}
        autocast, precision = _autocast(device)
        loader = DataLoader(
            RowDataset(sources, preparer, known),
            batch_sampler=BatchPlan(chunks, sources, preparer, options.batch_size, known),
            collate_fn=Collate(preparer), num_workers=options.num_workers, pin_memory=device.type == "cuda",
            worker_init_fn=_single_thread_worker if options.num_workers else None,
            prefetch_factor=4 if options.num_workers else None)
        buffers: dict[int, ChunkBuffer] = {}
        for index, rows in chunks:
            buffers[index] = ChunkBuffer(index, rows, np.zeros((len(rows), spec.dim), np.float32),
                                         np.zeros(len(rows), bool),
                                         {f"layer{k}": np.zeros((len(rows), spec.layer_dims[k]), np.float32)
                                          for k in options.layers}, remaining=len(rows))
        chunk_of = {row: index for index, rows in chunks for row in rows}
        total_rows = sum(len(rows) for _, rows in chunks)
        run_started = time.perf_counter()
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), ClipRate(),
                            TimeRemainingColumn(), console=console, disable=not show_progress, transient=False)
        with progress:
            task = progress.add_task(f"{name} [{writer.fingerprint[:12]}]", total=total_rows)
            waited = time.perf_counter()
            for batch in loader:
                timings["wait_s"] += time.perf_counter() - waited
                timings["decode_s"] += batch.decode_s
                if batch.inputs is not None:
                    forward_started = time.perf_counter()
                    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.inputs.items()}
                    with autocast:
                        output = encoder.encode(inputs, options.layers)
                    pooled = output.pooled.float().cpu().numpy()  # (b, D): also synchronises the device
                    layers = {f"layer{k}": v.float().cpu().numpy() for k, v in output.layers.items()}
                    timings["forward_s"] += time.perf_counter() - forward_started
                    storable = _storable(pooled, layers, options.dtype)
                    for position, row in enumerate(batch.valid_rows):
                        buffer = buffers[chunk_of[row]]
                        offset = row - buffer.rows.start
                        if storable[position] is not None:  # a NaN/Inf output is a failure, never a stored value
                            buffer.failures.append({"sample_id": sample_ids[row], "row": row,
                                                    "error": storable[position]})
                            continue
                        buffer.data[offset] = pooled[position]
                        buffer.valid[offset] = True
                        for extra, values in layers.items():
                            buffer.extras[extra][offset] = values[position]
                for row, error in batch.errors.items():
                    buffers[chunk_of[row]].failures.append({"sample_id": sample_ids[row], "row": row, "error": error})
                for row in batch.rows:
                    buffer = buffers[chunk_of[row]]
                    buffer.remaining -= 1
                    if buffer.remaining == 0:
                        write_started = time.perf_counter()
                        buffer.failures.sort(key=lambda f: f["row"])
                        writer.write_chunk(buffer.index, buffer.data, valid=buffer.valid, failures=buffer.failures,
                                           extras=buffer.extras)
                        del buffers[buffer.index]
                        timings["write_s"] += time.perf_counter() - write_started
                progress.advance(task, len(batch.rows))
                waited = time.perf_counter()
        wall = time.perf_counter() - run_started
        timings.update(wall_s=wall, rows=total_rows, clips_per_s=total_rows / wall if wall > 0 else 0.0)
        entry = writer.publish({
            "dataset": dataset_name, "manifest_version": version, "modality": modality, "encoder": encoder.name,
            "model_id": spec.model_id, "device": str(device), "precision": precision,
            "batch_size": options.batch_size, "num_workers": options.num_workers,
            "chunks_resumed": resumed, "chunks_computed": len(pending), "timings": timings,
        })
    return ExtractResult(entry, created=True, chunks_resumed=resumed, chunks_computed=len(pending),
                         failures=entry.failures())
