"""Feature arrays: Zarr v3 entries, rows aligned with the manifest, written resumably.

A row is either pooled, shape ``(D,)``, or a sequence, shape ``(T, D)`` with its true length in
``lengths``: dense and padded at the END with zeros (the layout the MMSA and MultiBench affect-data
files use). Layout of one entry (``<store>/features/<name>/<fingerprint>/``)::

    zarr.json            Zarr v3 group
    data/                [N, D] or [N, T, D] float16 (or float32), chunks of whole rows, ~1.5 MiB
    lengths/             sequence entries only: [N] int32, same row chunks; steps t >= lengths[i]
                         of row i are zero, and an invalid row has length 0
    valid/               [N] bool, False for rows whose media failed (never zero-filled silently)
    <extra>/             optional [N, ...] arrays (per-layer outputs), same row chunks
    key.json             the key material the fingerprint was computed from
    meta.json            shape [N, *row_shape], row_shape, dtype, chunking, timings, failures, time

Every chunk of every array has its file (empty chunks are written too), so a missing chunk file
means a damaged entry and reading it is an error, never a silent fill value. So is every other
damage a read meets: a chunk file of the wrong size, a chunk that does not decode, a ``meta.json``
/ ``key.json`` / ``zarr.json`` that is missing, not JSON or of the wrong shape, a ``key.json`` that
does not hash to the entry's fingerprint. Each raises `DamagedError` (store/damage.py) naming the
entry and the file.

A writer works in ``.tmp-<fingerprint>/`` under an exclusive lock; each finished chunk gets a
marker in ``progress/`` written after its data, so a killed run resumes and recomputes only the
chunks without a marker. ``publish`` renames the temporary directory to its final name, which is
atomic: readers see either no entry or a complete one. Two processes asking for the same entry
serialise on the lock; the second finds the published entry and reuses it. A published entry is
never written again, so finding one takes neither the lock nor write access (a read-only store
serves it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec, BytesCodec

from mmpipe.store.damage import (
    ChunkDamage,
    Damaged,
    DamagedError,
    entry_chunks,
    json_object,
    read_json,
    unreadable,
)
from mmpipe.store.fingerprint import canonical_json, fingerprint, key_material
from mmpipe.store.writes import writing

# A failed write keeps the finished chunks of the temporary entry: they are the resume point.
_RESUMES = "; its finished chunks stay in the temporary entry and the next run resumes from them"
TARGET_CHUNK_BYTES = 3 * 2**19  # 1.5 MiB: large enough for fast reads, small enough to resume cheaply
COMPRESSIONS = ("none", "lz4")
DTYPES = ("float16", "float32")
# zarr skips chunks equal to the fill value by default; an entry stores every chunk so that a
# missing file can be told apart from a chunk of zeros (all rows failed, or padding only).
_WRITE_ALL_CHUNKS = {"write_empty_chunks": True}


def chunk_rows_for(row_shape: Sequence[int], dtype: str) -> int:
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return max(1, TARGET_CHUNK_BYTES // max(1, row_bytes))


def entry_key(name: str, config: Any) -> dict[str, Any]:
    """The key material of entry ``name`` under ``config``; its fingerprint names the entry's directory."""
    return key_material({"feature": name, **dict(config)})


def entry_bytes(n_rows: int, row_shape: Sequence[int], dtype: str, extras: dict[str, Sequence[int]] | None = None) -> int:
    """Bytes on disk of an uncompressed entry: data, extras, ``valid`` and (sequences) ``lengths``."""
    item = np.dtype(dtype).itemsize
    per_row = sum(int(np.prod(shape, dtype=np.int64)) for shape in [row_shape, *(extras or {}).values()]) * item
    return n_rows * (per_row + 1 + (4 if len(row_shape) == 2 else 0))


def _write_json(path: Path, data: Any) -> None:
    """Atomically: the file is complete or absent; a failed write leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _damaged_entry(path: Path) -> Callable[[str], DamagedError]:
    return lambda reason: DamagedError(Damaged(path, "feature entry", reason))


def _digest(key: dict[str, Any]) -> str | None:
    """sha256 of stored key material exactly as saved (not re-keyed: a later CACHE_VERSION must
    not make an intact entry look damaged); None for material with no canonical JSON (NaN)."""
    try:
        return hashlib.sha256(canonical_json(key).encode()).hexdigest()
    except (TypeError, ValueError):
        return None


def _compressors(compression: str):
    if compression == "none":
        return None
    if compression == "lz4":
        return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")


@dataclass(frozen=True)
class FeatureEntry:
    """A published, read-only feature entry."""

    path: Path
    name: str
    fingerprint: str
    key: dict[str, Any]
    meta: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> FeatureEntry:
        """Read ``meta.json`` and ``key.json``; damage raises `DamagedError`. The arrays are
        checked against ``meta.json`` when they are read."""
        damaged = _damaged_entry(path)
        meta = json_object(read_json(path / "meta.json", damaged), "meta.json", damaged,
                           {"name": str, "shape": list, "dtype": str})
        shape = meta["shape"]
        if len(shape) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise damaged(f"meta.json: shape {shape} is not [N, *row_shape] of non-negative integers")
        if meta["dtype"] not in DTYPES or meta["name"] != path.parent.name:
            raise damaged(f"meta.json names {meta['name']!r} of dtype {meta['dtype']!r}, not an entry of "
                          f"{path.parent.name} in one of {', '.join(DTYPES)}")
        if meta.get("row_shape", shape[1:]) != shape[1:] or not isinstance(meta.get("extras", {}), dict):
            raise damaged("meta.json: row_shape or extras disagree with its shape")
        key = read_json(path / "key.json", damaged)
        if not isinstance(key, dict) or _digest(key) != path.name:
            raise damaged("key.json does not hash to the entry's fingerprint (its directory name)")
        return cls(path=path, name=meta["name"], fingerprint=path.name, key=key, meta=meta)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, *row_shape)``."""
        return tuple(self.meta["shape"])

    @property
    def row_shape(self) -> tuple[int, ...]:
        """``(D,)`` for pooled rows, ``(T, D)`` for sequences."""
        return tuple(self.meta.get("row_shape", self.meta["shape"][1:]))

    @property
    def is_sequence(self) -> bool:
        return len(self.row_shape) == 2

    @property
    def dim(self) -> int:
        """D, the feature width of one row (of one step, for a sequence)."""
        return self.row_shape[-1]

    def array(self, name: str) -> zarr.Array:
        """An array of the entry, its metadata checked against ``meta.json``."""
        n, expected = self.shape[0], {"data": (self.shape, self.meta["dtype"]), "valid": ((self.shape[0],), "bool")}
        if self.is_sequence:
            expected["lengths"] = ((n,), "int32")
        for extra, shape in self.meta.get("extras", {}).items():
            expected[extra] = ((n, *shape), self.meta["dtype"])
        shape, dtype = expected[name]
        return open_array(self.path, name, _damaged_entry(self.path), shape=shape, dtype=dtype)

    def array_names(self) -> list[str]:
        return ["data", *(["lengths"] if self.is_sequence else []), *self.meta.get("extras", {})]

    def load(self, array: str = "data", rows: Any = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """An array (default ``data``) as a tensor: all rows, or only ``rows`` (1-d integer indices,
        in the order given), in the stored dtype or converted to ``dtype``.

        All rows in the stored dtype take one bulk read (each chunk file straight into its slice
        of the output). Otherwise chunks are read one at a time, and only those holding a wanted
        row, into one preallocated output: loading float16 as ``dtype=torch.float32`` peaks at
        about the float32 output plus one chunk, never the float16 array plus its float32 copy.
        """
        stored = self.array(array)
        folder = self.path / array
        stored_dtype = torch.from_numpy(np.empty(0, dtype=stored.dtype)).dtype
        with entry_chunks(self.path, "feature entry"):
            if rows is None and (dtype is None or dtype == stored_dtype):
                return torch.from_numpy(read_whole(stored, folder))
            index = None if rows is None else _row_indices(rows, stored.shape[0])
            n = stored.shape[0] if index is None else len(index)
            out = torch.empty((n, *stored.shape[1:]), dtype=dtype or stored_dtype)
            read_into(stored, folder, out, index)
        return out

    def lengths(self) -> torch.Tensor | None:
        """Sequence entries: the number of valid steps of each row, int64 ``[N]``; pooled: None."""
        if not self.is_sequence:
            return None
        return self.load("lengths").to(torch.int64)

    def valid(self) -> np.ndarray:
        """Boolean row mask: False where the media failed and the row holds no features."""
        with entry_chunks(self.path, "feature entry"):
            return read_mask(self.array("valid"), self.path / "valid")

    def failures(self) -> list[dict[str, Any]]:
        return list(self.meta.get("failures", []))

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class FeatureWriter:
    """Resumable, atomically published writer of one entry. Use as a context manager.

    >>> with FeatureWriter(features_dir, "sim1.m1", config, n_rows=N, dim=10) as writer:
    ...     if writer.existing is None:
    ...         for index in writer.pending_chunks():
    ...             start, stop = writer.chunk_bounds(index)
    ...             writer.write_chunk(index, compute(start, stop))
    ...         writer.publish({"timings": ...})

    With ``steps=T`` rows are sequences: ``data`` chunks are ``[rows, T, D]`` and each
    ``write_chunk`` also takes the rows' ``lengths``.
    """

    def __init__(
        self,
        features_dir: Path,
        name: str,
        config: Any,
        *,
        n_rows: int,
        dim: int,
        steps: int | None = None,
        dtype: str = "float16",
        compression: str = "none",
        extras: dict[str, Sequence[int]] | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        """``chunk_rows`` overrides the ~1.5 MiB default row chunk (it is not part of the key: it
        changes the resume granularity, not the values). Neither is ``steps``: the caller's config
        already says what the features are; an entry stored under the same key with another shape
        is refused when the writer opens."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be >= 1 (or None for pooled rows), not {steps}")
        _compressors(compression)  # validate early
        self.name = name
        self.key = entry_key(name, config)
        self.fingerprint = fingerprint(self.key)
        self.entry_dir = Path(features_dir) / name
        self.final = self.entry_dir / self.fingerprint
        self.tmp = self.entry_dir / f".tmp-{self.fingerprint}"
        self.n_rows, self.dim, self.steps, self.dtype, self.compression = n_rows, dim, steps, dtype, compression
        self.row_shape: tuple[int, ...] = (dim,) if steps is None else (steps, dim)
        if chunk_rows is not None and chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, not {chunk_rows}")
        self.requested_chunk_rows = chunk_rows
        self.extras = {k: tuple(v) for k, v in (extras or {}).items()}
        if {"data", "valid", "lengths"} & set(self.extras):
            raise ValueError("extras cannot be named data, valid or lengths")
        self.existing: FeatureEntry | None = None
        self._lock_file = None
        self._group: zarr.Group | None = None
        self._arrays: dict[str, zarr.Array] = {}

    @property
    def is_sequence(self) -> bool:
        return self.steps is not None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> FeatureWriter:
        if self._find_published():  # no lock needed: a published entry is never written again
            return self
        with writing(f"feature entry {self.name}", self.final):
            self.entry_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.entry_dir / f".{self.fingerprint}.lock", "a+")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            if not self._find_published():  # another writer may have published it while we waited
                with writing(f"feature entry {self.name}", self.final):
                    self._open_tmp()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _find_published(self) -> bool:
        if not self.final.exists():
            return False
        self.existing = FeatureEntry.open(self.final)
        self._check_shape(self.existing.shape, f"published entry {self.final}")
        return True

    def __exit__(self, *exc: object) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _check_shape(self, stored: Sequence[int], where: str) -> None:
        wanted = (self.n_rows, *self.row_shape)
        if tuple(stored) != wanted:
            raise ValueError(f"{self.name}: {where} has shape {tuple(stored)} under the same key, but this "
                             f"writer was asked for {wanted}; whatever decides the shape belongs in the config")

    def _open_tmp(self) -> None:
        if (self.tmp / "key.json").exists():
            stored = json.loads((self.tmp / "key.json").read_text())
            if stored != self.key:  # impossible unless the directory was tampered with
                shutil.rmtree(self.tmp)
        if (self.tmp / "key.json").exists():
            self._group = zarr.open_group(self.tmp, mode="r+")
            self._check_shape(self._group["data"].shape, f"unfinished entry {self.tmp}")
            self.chunk_rows = int(self._group.attrs["chunk_rows"])
            self._arrays = {name: self._group[name].with_config(_WRITE_ALL_CHUNKS) for name in self._array_names()}
            return
        if self.tmp.exists():  # created but never initialised: nothing in it is trustworthy
            shutil.rmtree(self.tmp)
        try:
            self._create_tmp()
        except BaseException:  # e.g. a full disk: leave no half-initialised directory behind
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _create_tmp(self) -> None:
        rows = self.requested_chunk_rows or chunk_rows_for(self.row_shape, self.dtype)
        self.chunk_rows = min(rows, max(1, self.n_rows))
        group = zarr.open_group(self.tmp, mode="w", attributes={"chunk_rows": self.chunk_rows})
        compressors = _compressors(self.compression)

        def create(name: str, row_shape: tuple[int, ...], dtype: str, compressors: Any, fill: Any) -> None:
            self._arrays[name] = group.create_array(
                name, shape=(self.n_rows, *row_shape), chunks=(self.chunk_rows, *row_shape), dtype=dtype,
                compressors=compressors, fill_value=fill, config=_WRITE_ALL_CHUNKS)

        create("data", self.row_shape, self.dtype, compressors, 0)
        create("valid", (), "bool", None, False)
        if self.is_sequence:
            create("lengths", (), "int32", None, 0)
        for extra, shape in self.extras.items():
            create(extra, shape, self.dtype, compressors, 0)
        (self.tmp / "progress").mkdir()
        # key.json last: its presence marks a fully initialised temporary entry
        _write_json(self.tmp / "key.json", self.key)
        self._group = group

    def _array_names(self) -> list[str]:
        return ["data", "valid", *(["lengths"] if self.is_sequence else []), *self.extras]

    # -- chunks --------------------------------------------------------------------------------
    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_rows)

    def chunk_bounds(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_rows
        return start, min(start + self.chunk_rows, self.n_rows)

    def _marker(self, index: int) -> Path:
        return self.tmp / "progress" / f"{index}.json"

    def done_chunks(self) -> list[int]:
        return sorted(int(p.stem) for p in (self.tmp / "progress").glob("*.json"))

    def pending_chunks(self) -> list[int]:
        done = set(self.done_chunks())
        return [i for i in range(self.n_chunks) if i not in done]

    def write_chunk(
        self,
        index: int,
        data: np.ndarray | torch.Tensor,
        *,
        valid: np.ndarray | None = None,
        failures: list[dict[str, Any]] | None = None,
        extras: dict[str, np.ndarray | torch.Tensor] | None = None,
        lengths: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    ) -> None:
        """Write rows ``chunk_bounds(index)``; then, and only then, mark the chunk complete.

        ``data`` is ``[rows, D]``, or ``[rows, T, D]`` for a sequence entry, which also needs
        ``lengths`` (``[rows]`` integers in ``0..T``). ``valid`` (bool per row, default all True)
        marks rows whose media failed; their ``failures`` records ({"sample_id", "error"}) are
        kept with the entry. Stored values are normalised whatever the caller passed: invalid rows
        are zero (in ``data`` and every extra; their length is 0), and so is every step at or
        beyond a row's length (in ``data`` and in extras shaped ``(T, ...)``).
        """
        assert self._group is not None, "use the writer as a context manager"
        start, stop = self.chunk_bounds(index)
        rows = stop - start
        array = _as_numpy(data, self.dtype)
        if array.shape != (rows, *self.row_shape):
            raise ValueError(f"chunk {index}: expected shape {(rows, *self.row_shape)}, got {array.shape}")
        valid = np.ones(rows, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if valid.shape != (rows,):
            raise ValueError(f"chunk {index}: valid mask must have {rows} entries")
        steps = self._check_lengths(index, rows, lengths)
        if steps is not None:
            steps[~valid] = 0
            padding = np.arange(self.steps)[None, :] >= steps[:, None]  # (rows, T)
        array[~valid] = 0  # the mask, not the value, says these rows are missing
        if steps is not None:
            array[padding] = 0
        extra_arrays = {}
        for extra, shape in self.extras.items():
            if extras is None or extra not in extras:
                raise ValueError(f"chunk {index}: extra {extra!r} is missing")
            values = _as_numpy(extras[extra], self.dtype)
            if values.shape != (rows, *shape):
                raise ValueError(f"chunk {index}: extra {extra!r}: expected shape {(rows, *shape)}, got {values.shape}")
            values[~valid] = 0
            if steps is not None and len(shape) >= 2 and shape[0] == self.steps:
                values[padding] = 0
            extra_arrays[extra] = values
        with writing(f"chunk {index} of feature entry {self.name}", self.tmp, after=_RESUMES):
            self._arrays["data"][start:stop] = array
            self._arrays["valid"][start:stop] = valid
            if steps is not None:
                self._arrays["lengths"][start:stop] = steps
            for extra, values in extra_arrays.items():
                self._arrays[extra][start:stop] = values
            _write_json(self._marker(index), {"failures": failures or []})

    def _check_lengths(self, index: int, rows: int, lengths: Any) -> np.ndarray | None:
        if not self.is_sequence:
            if lengths is not None:
                raise ValueError(f"chunk {index}: lengths given, but {self.name} has pooled rows (no steps=)")
            return None
        if lengths is None:
            raise ValueError(f"chunk {index}: a sequence entry needs the rows' lengths")
        if isinstance(lengths, torch.Tensor):
            lengths = lengths.detach().cpu().numpy()
        lengths = np.asarray(lengths)
        if lengths.shape != (rows,):
            raise ValueError(f"chunk {index}: lengths must have shape {(rows,)}, got {lengths.shape}")
        if lengths.dtype == bool or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"chunk {index}: lengths must be integers, got {lengths.dtype}")
        bad = (lengths < 0) | (lengths > self.steps)
        if bad.any():
            raise ValueError(f"chunk {index}: {int(bad.sum())} lengths outside 0..{self.steps}, "
                             f"e.g. {int(lengths[bad][0])}")
        return lengths.astype(np.int32)

    # -- publication ---------------------------------------------------------------------------
    def publish(self, meta: dict[str, Any] | None = None) -> FeatureEntry:
        """Atomically turn the completed temporary entry into a published one."""
        assert self._group is not None, "use the writer as a context manager"
        missing = self.pending_chunks()
        if missing:
            raise RuntimeError(f"{self.name}: cannot publish, {len(missing)} chunks not written")
        failures: list[dict[str, Any]] = []
        for index in range(self.n_chunks):
            failures.extend(json.loads(self._marker(index).read_text())["failures"])
        record = {
            **(meta or {}),
            "name": self.name,
            "shape": [self.n_rows, *self.row_shape],
            "row_shape": list(self.row_shape),
            "dtype": self.dtype,
            "chunk_rows": self.chunk_rows,
            "compression": self.compression,
            "extras": {k: list(v) for k, v in self.extras.items()},
            "failures": failures,
            "n_missing": len(failures),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with writing(f"feature entry {self.name}", self.final, after=_RESUMES):
            _write_json(self.tmp / "meta.json", record)
            try:
                os.rename(self.tmp, self.final)
            except OSError:
                if not self.final.exists():
                    raise
                shutil.rmtree(self.tmp)  # another writer published the same key first: reuse it
        # Only now: a publish killed before the rename must still find its chunk markers.
        shutil.rmtree(self.final / "progress", ignore_errors=True)
        self.existing = FeatureEntry.open(self.final)
        return self.existing


# -- reading ---------------------------------------------------------------------------------------
def _is_plain(array: zarr.Array) -> bool:
    """Uncompressed, native-endian, whole rows per chunk: a chunk file is the chunk's raw bytes."""
    meta = array.metadata
    return (
        meta.zarr_format == 3
        and len(meta.codecs) == 1
        and isinstance(meta.codecs[0], BytesCodec)
        and (meta.codecs[0].endian.value == sys.byteorder if meta.codecs[0].endian is not None
             else array.dtype.itemsize == 1)  # bool: one byte, no byte order
        and getattr(meta.chunk_key_encoding, "name", "") == "default"
        and array.chunks[1:] == array.shape[1:]
    )


def _chunk_file(array: zarr.Array, folder: Path, index: int) -> Path:
    return folder / array.metadata.chunk_key_encoding.encode_chunk_key((index,) + (0,) * (array.ndim - 1))


def chunk_bytes(array: zarr.Array) -> int:
    """The size of every chunk file of a plain array: zarr v3 stores edge chunks padded to full size."""
    return int(np.prod(array.chunks, dtype=np.int64)) * array.dtype.itemsize


def _read_chunk(array: zarr.Array, folder: Path, index: int, buffer: np.ndarray | None) -> np.ndarray:
    """Rows of chunk ``index`` in the stored dtype; plain arrays are read into ``buffer``."""
    rows = array.chunks[0]
    start, stop = index * rows, min((index + 1) * rows, array.shape[0])
    path = _chunk_file(array, folder, index)
    if buffer is None:
        check_encoded_chunk(array, path)
        try:
            return np.asarray(array[start:stop])
        except (RuntimeError, ValueError) as error:  # blosc, or a compressed chunk of the wrong size
            raise ChunkDamage(path, f"does not decode ({type(error).__name__}: {_first_line(error)})") from None
    view = buffer[: stop - start]
    _read_file_into(path, memoryview(view.reshape(-1).view(np.uint8)), chunk_bytes(array))
    return view


def _read_file_into(path: Path, target: memoryview, size: int) -> None:
    """Fill ``target`` from the start of a chunk file that must hold exactly ``size`` bytes. The
    size comes from the open file (fstat), so checking it costs no path lookup."""
    with _opened_chunk(path, buffering=0) as handle:
        actual = os.fstat(handle.fileno()).st_size
        if actual != size:
            problem = "is truncated" if actual < size else "is longer than its chunk"
            raise ChunkDamage(path, f"{problem} ({actual} bytes, not {size})")
        if handle.readinto(target) != len(target):
            raise ChunkDamage(path, "was truncated while being read")


@contextmanager
def _opened_chunk(path: Path, buffering: int = -1) -> Iterator[BinaryIO]:
    """A chunk file open for reading; one that cannot be opened is `ChunkDamage` naming it."""
    try:
        handle = open(path, "rb", buffering=buffering)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ChunkDamage(path, "is missing") from None
    except IsADirectoryError:
        raise ChunkDamage(path, "is a directory, not a chunk file") from None
    except PermissionError as error:
        raise unreadable(path, error) from None
    with handle:
        yield handle


def read_whole(array: zarr.Array, folder: Path) -> np.ndarray:
    """Read a whole array. Uncompressed row-chunked arrays take a fast path: each chunk file is
    read straight into its slice of one preallocated buffer (zarr's generic path decodes every
    chunk into a temporary and copies it, about 3x slower on 150 MB of float16). Anything else
    (compressed, other layouts) goes through zarr. A missing chunk file, a plain one of the wrong
    size or one that does not decode raises `ChunkDamage` (a UserError naming the file).
    """
    if not _is_plain(array) or array.shape[0] == 0:
        n_chunks = -(-array.shape[0] // array.chunks[0])
        for index in range(n_chunks):
            check_encoded_chunk(array, _chunk_file(array, folder, index))
        try:
            return np.ascontiguousarray(array[...])
        except (RuntimeError, ValueError):  # find the chunk that does not decode, to name it
            for index in range(n_chunks):
                _read_chunk(array, folder, index, None)
            raise
    out = np.empty(array.shape, dtype=array.dtype)
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    rows, row_bytes, size = array.chunks[0], out[:1].nbytes, chunk_bytes(array)
    for index in range(-(-array.shape[0] // rows)):
        start = index * rows * row_bytes
        stop = min((index + 1) * rows, array.shape[0]) * row_bytes
        _read_file_into(_chunk_file(array, folder, index), buffer[start:stop], size)
    return out


def check_encoded_chunk(array: zarr.Array, path: Path) -> None:
    """A chunk file read through zarr exists and, when blosc-compressed, holds exactly the frame
    its header describes, decoding to the chunk's size: blosc decodes a truncated frame without
    complaint (reading past its end), so its header is checked first (16 bytes per chunk)."""
    with _opened_chunk(path) as handle:
        header, size = handle.read(16), os.fstat(handle.fileno()).st_size
    codecs = array.metadata.codecs
    if not (len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], BloscCodec)):
        return
    if len(header) < 16:
        raise ChunkDamage(path, f"is truncated ({size} bytes, less than a blosc header)")
    nbytes, _, cbytes = struct.unpack("<III", header[4:16])  # blosc header: sizes, little-endian
    if cbytes != size:
        raise ChunkDamage(path, f"{'is truncated' if size < cbytes else 'is longer than its blosc frame'} "
                                f"({size} bytes, its header says {cbytes})")
    if nbytes != chunk_bytes(array):
        raise ChunkDamage(path, f"does not decode to its chunk's {chunk_bytes(array)} bytes (header: {nbytes})")


def read_mask(array: zarr.Array, folder: Path) -> np.ndarray:
    """A whole boolean array; any byte but 0 and 1 in it is damage (numpy would read it as True)."""
    mask = read_whole(array, folder)
    if mask.dtype != np.bool_:
        raise ChunkDamage(folder, f"holds {mask.dtype}, not a boolean mask")
    if mask.size and mask.view(np.uint8).max() > 1:
        raise ChunkDamage(folder, "holds bytes other than 0 and 1, so it is no boolean mask")
    return mask


def open_array(group_dir: Path, name: str, damaged: Callable[[str], DamagedError], *, where: str = "",
               shape: Sequence[int] | None = None, dtype: str | None = None) -> zarr.Array:
    """Array ``name`` of the Zarr group in ``group_dir``, with the ``shape`` and ``dtype`` the
    entry's record promises. Unreadable group or array metadata, a group where the array should
    be, or another shape or dtype raise ``damaged(reason)``; the reason names the file relative to
    the entry, ``where`` being the group's folder in it (``components/`` for a run)."""
    try:
        group = zarr.open_group(group_dir, mode="r")
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise damaged(f"{where}zarr.json {_metadata_problem(group_dir / 'zarr.json', error)}") from None
    try:
        array = group[name]
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise damaged(f"{where}{name}/zarr.json {_metadata_problem(group_dir / name / 'zarr.json', error)}") from None
    if not isinstance(array, zarr.Array):
        raise damaged(f"{where}{name}/zarr.json describes a group, not an array")
    if (shape is not None and tuple(array.shape) != tuple(shape)) or (dtype is not None and str(array.dtype) != dtype):
        raise damaged(f"{where}{name}/zarr.json describes {str(array.dtype)} {tuple(array.shape)}, not the "
                      f"{dtype or str(array.dtype)} {tuple(shape or array.shape)} its entry's record promises")
    return array


def _metadata_problem(file: Path, error: Exception) -> str:
    if isinstance(error, PermissionError):
        raise unreadable(file, error) from None
    if not file.is_file():
        return "is missing"
    return f"is unreadable ({type(error).__name__}: {_first_line(error)})"


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:120]


def read_into(array: zarr.Array, folder: Path, out: torch.Tensor, rows: np.ndarray | None = None) -> None:
    """Fill ``out`` (``[len(rows) or N, ...]``, any dtype) with ``array[rows]`` one chunk at a time,
    converting each chunk as it goes; only chunks that hold a wanted row are read."""
    step = array.chunks[0]
    buffer = np.empty((step, *array.shape[1:]), dtype=array.dtype) if _is_plain(array) else None
    try:  # numpy converts a chunk about 2.5x faster than torch's copy_ (no numpy view of bfloat16)
        target: np.ndarray | None = out.numpy()
    except TypeError:
        target = None
    if rows is None:
        for index in range(-(-array.shape[0] // step)):
            block = _read_chunk(array, folder, index, buffer)
            start = index * step
            if target is not None:
                np.copyto(target[start:start + len(block)], block, casting="unsafe")
            else:
                out[start:start + len(block)].copy_(torch.from_numpy(block))
        return
    chunk_of = rows // step
    order = np.argsort(chunk_of, kind="stable")
    for positions in np.split(order, np.flatnonzero(np.diff(chunk_of[order])) + 1):
        if len(positions) == 0:
            continue
        index = int(chunk_of[positions[0]])
        picked = _read_chunk(array, folder, index, buffer)[rows[positions] - index * step]
        if target is not None:
            target[positions] = picked
        else:
            out[torch.from_numpy(positions)] = torch.from_numpy(picked).to(out.dtype)


def _row_indices(rows: Any, n: int) -> np.ndarray:
    if isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu().numpy()
    rows = np.asarray(rows)
    if rows.ndim != 1 or rows.dtype == bool or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"rows must be 1-d integer indices (use mask.nonzero() for a mask), got "
                         f"{rows.dtype} of shape {rows.shape}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"rows must lie in 0..{n - 1}; got {int(rows.min())}..{int(rows.max())}")
    return rows


def _as_numpy(data: np.ndarray | torch.Tensor, dtype: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().to("cpu", torch.float32).numpy()
    return np.array(data, dtype=dtype, copy=True)
