"""Ingest a public feature pickle (MultiBench, MulT, MMSA) into the store: `mmpipe ingest`.

Flow: locate the file (its public name under ``--data-dir``, or ``--set file=PATH``) → its sha256
(memoised by size and mtime) → read its structure without loading any feature array and validate
it (`mmpipe.pipeline.datasets.affect`: every bad-file error is raised here, before anything is
stored) → the manifest (its version depends on the file's content) → one sequence entry per
modality, ``<dataset>.<modality>.<feature>``: ``(T, D)`` rows, end-padded, with their true lengths.

Idempotent: an entry's key is the dataset, the manifest version, the modality, the source format
and sha256, the length rule, the non-finite policy and the stored dtype. The same file with the
same options again finds every entry published and writes nothing ("nothing to do"); another
copy of the file, or other options, is another entry. Entries are written chunk by chunk by the
resumable `FeatureWriter`: an interrupted ingest resumes at the first unfinished chunk.

Memory: rows are copied from the file a chunk (~1.5 MiB of stored rows) at a time, through one
chunk-sized buffer; no modality, split or file is ever held whole, and nothing is converted to
float64. Peak memory is the interpreter and its libraries plus a few chunks
(``tests/benchmarks/bench_ingest.py`` measures it on a MOSEI-size file).

Non-finite values (NaN, ±inf, and finite values beyond the stored dtype's range, which it would
store as ±inf) are counted per modality and split and handled by an explicit policy:

- ``zero`` (default, what MultiBench's, MulT's and MMSA's loaders do with -inf): stored as 0; the
  counts are printed and recorded in the entry (``mmpipe info`` shows them);
- ``error``: the file is refused in one line naming the file, the split and the key, with the
  counts, before anything is stored.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np

from mmpipe.adapters.data import feature_name
from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.pipeline.datasets.affect import (
    FILE_SPLITS,
    AffectDataset,
    AffectSource,
    ModalityData,
    SourceFile,
    file_sha256,
)
from mmpipe.pipeline.datasets.pickles import FileArray
from mmpipe.store.errors import UserError, human_size
from mmpipe.store.features import FeatureEntry, chunk_rows_for, entry_bytes
from mmpipe.store.manifest import Manifest
from mmpipe.store.ranges import MAX_ROWS, Checked, between
from mmpipe.store.root import Store

READER_VERSION = 1  # bump when the same file would be read into different stored values
_SCAN_BYTES = 64 << 20  # rows per block when only counting (the nonfinite=error check)
_FILE_SPLIT = {manifest: file for file, manifest in FILE_SPLITS.items()}
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class IngestOptions(Checked):
    nonfinite: Literal["zero", "error"] = "zero"  # NaN / ±inf / beyond the dtype's range: store 0, or refuse
    dtype: Literal["float32", "float16"] = "float32"  # stored dtype (float16 overflows above 65504)
    chunk_rows: Annotated[int | None, between(1, MAX_ROWS)] = None  # None: the store's ~1.5 MiB chunks


@dataclass
class ValueCounts:
    """Non-finite values of one modality in one split, as they are in the file."""

    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    overflow: int = 0  # finite in the file, beyond the stored dtype's range
    rows: int = 0  # rows holding any of them

    @property
    def total(self) -> int:
        return self.nan + self.posinf + self.neginf + self.overflow

    def add(self, other: ValueCounts) -> None:
        for name in ("nan", "posinf", "neginf", "overflow", "rows"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def describe(self, dtype: str) -> str:
        """``75 non-finite values (-inf 75) in 2 rows``."""
        parts = [f"{label} {n:,}" for label, n in (("NaN", self.nan), ("+inf", self.posinf), ("-inf", self.neginf),
                                                   (f"beyond {dtype}'s range", self.overflow)) if n]
        return (f"{self.total:,} non-finite value{'s' if self.total != 1 else ''} ({', '.join(parts)}) in "
                f"{self.rows:,} row{'s' if self.rows != 1 else ''}")


@dataclass(frozen=True)
class IngestedEntry:
    """One modality's entry: written now, or found published."""

    modality: str
    entry: FeatureEntry
    created: bool

    @property
    def record(self) -> dict[str, Any]:
        return self.entry.meta.get("ingest", {})

    @property
    def nonfinite(self) -> dict[str, dict[str, int]]:
        """manifest split -> counts (``nan``, ``posinf``, ``neginf``, ``overflow``, ``rows``)."""
        return self.record.get("nonfinite", {}).get("counts", {})


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    manifest_version: str
    source: SourceFile
    split_sizes: dict[str, int]
    entries: tuple[IngestedEntry, ...]
    renamed_ids: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def created(self) -> list[str]:
        return [e.entry.name for e in self.entries if e.created]


@dataclass(frozen=True)
class Planned:
    """An entry to ingest: the modality's rows in the file, the entry's name and key, and the
    entry already published under that key, if any."""

    data: ModalityData
    feature: str
    key: dict[str, Any]
    published: FeatureEntry | None


@dataclass(frozen=True)
class IngestPlan:
    """A validated source and what ingesting it writes; nothing stored yet."""

    dataset: str
    source: AffectSource
    manifest: Manifest
    version: str
    options: IngestOptions
    entries: tuple[Planned, ...]
    timings: dict[str, float]
    hashed_stat: tuple[int, int] | None = None  # (size, mtime_ns) the sha256 was computed at; None: memoised

    @property
    def pending(self) -> list[Planned]:
        return [p for p in self.entries if p.published is None]


def plan_ingest(name: str, config: Any, options: IngestOptions = IngestOptions(), *, store: Store | None = None,
                progress: ProgressFn | None = None) -> IngestPlan:
    """Locate, hash and validate dataset ``name``'s feature file (``config``: `AffectConfig`) and
    plan its entries against ``store`` (None: a store not created yet, so everything is pending).

    Every refusal happens here, before anything is stored: a file that cannot be read or
    validated (one line naming the file, the split and the key), and, under ``nonfinite=error``,
    non-finite values in what is still to be written. The sha256 is memoised in ``store``.
    """
    dataset = DATASETS.get(name)()
    if not isinstance(dataset, AffectDataset):
        command = "simulate" if isinstance(dataset, Simulation) else "extract"
        raise UserError(f"{name} is not ingested from feature files; use `mmpipe {command} {name}` (ingested "
                        f"datasets: {', '.join(ingestible())})")
    say = progress or (lambda message: None)
    started = time.perf_counter()
    path, _ = dataset.locate(config)
    say(f"hashing {path}")
    memoised = _memoised_sha256(store, path) if store is not None else None
    stat = path.stat()
    sha256 = memoised or file_sha256(path)
    hashed = time.perf_counter()
    say(f"reading the structure of {path}")
    source = dataset.read(config, sha256=sha256)
    manifest = source.manifest()
    version = manifest.version()
    entries = []
    for data in source.modalities:
        feature = feature_name(name, data.modality, data.feature)
        key = _key(source, data, version, options)
        entries.append(Planned(data, feature, key, store.published(feature, key) if store is not None else None))
    plan = IngestPlan(name, source, manifest, version, options, tuple(entries),
                      {"hash_s": hashed - started, "read_s": time.perf_counter() - hashed},
                      (stat.st_size, stat.st_mtime_ns) if memoised is None else None)
    if options.nonfinite == "error" and plan.pending:
        _refuse_nonfinite(source, [p.data for p in plan.pending], options, say)
    return plan


class _NotMemoised(Exception):
    pass


def _remember_sha256(store: Store, plan: IngestPlan) -> None:
    """Memoise the validated file's sha256 (only now: a refused file leaves the store as it was),
    provided the file is unchanged since it was hashed."""
    path = plan.source.file.path
    if plan.hashed_stat is not None:
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) == plan.hashed_stat:
            store.stat_memo.get("sha256", path, lambda: plan.source.file.sha256)


def _memoised_sha256(store: Store, path: Any) -> str | None:
    """The sha256 the store's memo holds for ``path`` as it is now (size, mtime), else None; writes nothing."""

    def missing() -> str:
        raise _NotMemoised

    try:
        return store.stat_memo.get("sha256", path, missing)
    except _NotMemoised:
        return None


def ingest(store: Store, plan: IngestPlan, *, progress: ProgressFn | None = None) -> IngestResult:
    """Write what ``plan`` left to write: the manifest, then each pending entry chunk by chunk
    (resuming an interrupted ingest). Nothing pending: nothing written ("nothing to do")."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    _remember_sha256(store, plan)
    found = {p.feature: store.published(p.feature, p.key) for p in plan.entries}
    pending = [p for p in plan.entries if found[p.feature] is None]
    if pending or plan.version not in store.manifest_versions(plan.dataset):
        _check_free_space(store, pending, len(plan.manifest), plan.options)
        store.save_manifest(plan.manifest)
    entries = []
    for planned in plan.entries:
        published = found[planned.feature]
        if published is not None:
            entries.append(IngestedEntry(planned.data.modality, published, created=False))
        else:
            entries.append(_write(store, plan.source, planned, plan.version, plan.options, say))
    timings = {**plan.timings, "write_s": time.perf_counter() - started}
    return IngestResult(plan.dataset, plan.version, plan.source.file, plan.source.split_sizes, tuple(entries),
                        plan.source.renamed_ids, timings)


def ingest_file(store: Store, name: str, config: Any, options: IngestOptions = IngestOptions(), *,
                progress: ProgressFn | None = None) -> IngestResult:
    """`plan_ingest` then `ingest`, in one call (the Python API)."""
    return ingest(store, plan_ingest(name, config, options, store=store, progress=progress), progress=progress)


def ingestible() -> list[str]:
    """The registered datasets `mmpipe ingest` reads."""
    return [n for n in DATASETS.names() if issubclass(DATASETS.get(n), AffectDataset)]


def _key(source: AffectSource, data: ModalityData, version: str, options: IngestOptions) -> dict[str, Any]:
    """What decides the stored values; the chunk size does not."""
    return {"dataset": source.dataset, "manifest_version": version, "modality": data.modality,
            "source": {"format": source.file.format, "sha256": source.file.sha256, "key": data.key},
            "lengths": {"rule": data.rule.name, "key": data.rule.key}, "nonfinite": options.nonfinite,
            "dtype": options.dtype, "reader_version": READER_VERSION}


def _check_free_space(store: Store, pending: list[Planned], n_rows: int, options: IngestOptions) -> None:
    if not pending:
        return
    sizes = [(p.feature, entry_bytes(n_rows, (p.data.steps, p.data.dim), options.dtype)) for p in pending]
    needed = sum(size for _, size in sizes)
    free = shutil.disk_usage(store.root).free
    if needed > free:
        listing = "; ".join(f"{feature} {human_size(size)}" for feature, size in sizes)
        raise UserError(f"ingest needs about {human_size(needed)} on disk ({listing}), but only {human_size(free)} "
                        f"is free at {store.root}")


# -- reading rows ------------------------------------------------------------------------------------
def _pieces(source: AffectSource, start: int, stop: int) -> list[tuple[str, int, int, int, int]]:
    """The parts of manifest rows start:stop per split: (split, rows in the split, rows in the block)."""
    pieces = []
    for split, first, end in source.split_rows:
        lo, hi = max(start, first), min(stop, end)
        if lo < hi:
            pieces.append((split, lo - first, hi - first, lo - start, hi - start))
    return pieces


def _read_rows(source: AffectSource, data: ModalityData, start: int, stop: int, out: np.ndarray) -> np.ndarray:
    """Manifest rows start:stop of one modality, in the file's dtype, into ``out[:stop - start]``."""
    block = out[: stop - start]
    for split, lo, hi, a, b in _pieces(source, start, stop):
        array = data.arrays[split]
        if isinstance(array, FileArray) and array.dtype == block.dtype:
            array.read(lo, hi, out=block[a:b])
        else:
            block[a:b] = np.asarray(array[lo:hi] if not isinstance(array, FileArray) else array.read(lo, hi))
    return block


def _count(block: np.ndarray, limit: float) -> tuple[ValueCounts, np.ndarray | None]:
    """Non-finite values of ``block`` (rows, T, D), and the mask of the values to zero (None: none)."""
    finite = np.isfinite(block)
    over = None
    if block.dtype.kind in "iu" or np.finfo(block.dtype).max > limit:  # values the stored dtype cannot hold
        with np.errstate(invalid="ignore"):
            over = finite & (np.abs(block) > limit)
    if finite.all() and (over is None or not over.any()):
        return ValueCounts(), None
    bad = ~finite if over is None else ~finite | over
    counts = ValueCounts(int(np.isnan(block).sum()), int(np.isposinf(block).sum()), int(np.isneginf(block).sum()),
                         0 if over is None else int(over.sum()), int(bad.reshape(len(block), -1).any(axis=1).sum()))
    return counts, bad


def _refuse_nonfinite(source: AffectSource, modalities: list[ModalityData], options: IngestOptions,
                      say: ProgressFn) -> None:
    """Under ``nonfinite=error``: count the modalities' values first, refuse before storing anything."""
    limit = float(np.finfo(options.dtype).max)
    found: list[tuple[str, str, ValueCounts]] = []
    for data in modalities:
        say(f"checking {data.modality} for non-finite values")
        rows = max(1, _SCAN_BYTES // max(1, data.steps * data.dim * data.dtype.itemsize))
        buffer = np.empty((rows, data.steps, data.dim), dtype=data.dtype)
        for split, first, end in source.split_rows:
            counts = ValueCounts()
            for start in range(first, end, rows):
                stop = min(start + rows, end)
                counts.add(_count(_read_rows(source, data, start, stop, buffer), limit)[0])
            if counts.total:
                found.append((split, data.key, counts))
    if found:
        split, key, counts = found[0]
        more = f"; {len(found) - 1} more split/key pairs hold some" if len(found) > 1 else ""
        raise UserError(f"{source.file.path}, split {_FILE_SPLIT[split]!r}, key {key!r}: "
                        f"{counts.describe(options.dtype)}{more}; nothing stored (--set nonfinite=zero stores them "
                        "as 0, as the upstream loaders do, and records the counts)")


# -- lengths ----------------------------------------------------------------------------------------
def _lengths(source: AffectSource, data: ModalityData, block: np.ndarray, start: int, stop: int) -> np.ndarray:
    """True lengths of rows start:stop, by the modality's rule."""
    if data.lengths is not None:
        return np.concatenate([data.lengths[split][lo:hi] for split, lo, hi, _, _ in _pieces(source, start, stop)])
    nonzero = (block != 0).any(axis=2)  # (rows, T): a step with any non-zero (or NaN) value
    steps = block.shape[1]
    if data.rule.front:
        first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), steps)
        return (steps - first).astype(np.int64)
    last = np.where(nonzero.any(axis=1), steps - nonzero[:, ::-1].argmax(axis=1), 0)
    return last.astype(np.int64)


def _other_side(data: ModalityData, block: np.ndarray, lengths: np.ndarray) -> int:
    """Rows padded on the side the rule does not expect (all-zero steps at the end under the front
    rule, or at the start under an end rule): kept as data, counted so the choice can be checked."""
    has = lengths > 0
    if not has.any():
        return 0
    if data.rule.front:
        edge = block[:, -1, :]  # the last step: never padding under the front rule
    else:
        edge = block[:, 0, :]
    return int(((edge == 0).all(axis=1) & has).sum())


def _to_front(block: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Front-padded rows to end-padded: row i's last lengths[i] steps become its first."""
    steps = block.shape[1]
    order = (np.arange(steps)[None, :] + (steps - lengths)[:, None]) % steps  # (rows, T)
    return np.take_along_axis(block, order[:, :, None], axis=1)


# -- writing ----------------------------------------------------------------------------------------
def _write(store: Store, source: AffectSource, planned: Planned, version: str, options: IngestOptions,
           say: ProgressFn) -> IngestedEntry:
    data, feature, key = planned.data, planned.feature, planned.key
    n_rows = len(source.table)
    limit = float(np.finfo(options.dtype).max)
    sample_ids = source.table["sample_id"].to_numpy()
    with store.writer(feature, key, n_rows=n_rows, dim=data.dim, steps=data.steps, dtype=options.dtype,
                      chunk_rows=options.chunk_rows) as writer:
        if writer.existing is not None:
            return IngestedEntry(data.modality, writer.existing, created=False)
        started = time.perf_counter()
        pending = set(writer.pending_chunks())
        resumed = writer.n_chunks - len(pending)
        counts = {split: ValueCounts() for split in FILE_SPLITS.values()}
        empty = other = 0
        rows = writer.chunk_rows or chunk_rows_for((data.steps, data.dim), options.dtype)
        buffer = np.empty((rows, data.steps, data.dim), dtype=data.dtype)
        for index in range(writer.n_chunks):
            start, stop = writer.chunk_bounds(index)
            if index % 64 == 0:
                say(f"{feature}: rows {start:,} of {n_rows:,}")
            block = _read_rows(source, data, start, stop, buffer)
            found, bad = _count(block, limit)
            if found.total:
                for split, _, _, a, b in _pieces(source, start, stop):
                    counts[split].add(_count(block[a:b], limit)[0])
            lengths = _lengths(source, data, block, start, stop)
            empty += int((lengths == 0).sum())
            other += _other_side(data, block, lengths)
            if index not in pending:
                continue  # finished by an interrupted run: counted again, not rewritten
            if bad is not None:
                block[bad] = 0
            if data.rule.front:
                block = _to_front(block, lengths)
            failures = [{"sample_id": str(sample_ids[start + i]), "error": _empty_reason(data)}
                        for i in np.flatnonzero(lengths == 0)]
            writer.write_chunk(index, block, lengths=lengths, valid=lengths > 0, failures=failures)
        record = {
            "source": source.file.record(),
            "key": data.key,
            "source_dtype": str(data.dtype),
            "aligned": source.aligned,
            "length_rule": data.rule.name,
            "padding": data.rule.describe(),
            "rows_without_steps": empty,
            "rows_padded_on_the_other_side": other,
            "nonfinite": {"policy": options.nonfinite, "stored_as": 0 if options.nonfinite == "zero" else None,
                          "counts": {s: vars(c) for s, c in counts.items()},
                          "total": sum(c.total for c in counts.values())},
            "renamed_ids": source.renamed_ids,
        }
        entry = writer.publish({"dataset": source.dataset, "manifest_version": version, "modality": data.modality,
                                "ingest": record, "timings": {"write_s": time.perf_counter() - started,
                                                              "chunks_resumed": resumed}})
    return IngestedEntry(data.modality, entry, created=True)


def _empty_reason(data: ModalityData) -> str:
    if data.rule.key:
        return f"no {data.modality} steps: the file gives length 0 ({data.rule.key})"
    return f"no {data.modality} steps: every step is zero in the file"
