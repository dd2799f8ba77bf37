"""Feature arrays: Zarr v3 entries, rows aligned with the manifest, written resumably.

Layout of one entry (``<store>/features/<name>/<fingerprint>/``)::

    zarr.json            Zarr v3 group
    data/                [N, d] float16 (or float32), chunks of ~1.5 MB of whole rows
    valid/               [N] bool, False for rows whose media failed (never zero-filled silently)
    <extra>/             optional [N, ...] arrays (per-layer outputs), same row chunks
    <seq>/values         optional ragged sequences: flat [sum T_i, ...] values ...
    <seq>/offsets        ... and [N + 1] int64 offsets
    key.json             the key material the fingerprint was computed from
    meta.json            shape, dtype, chunking, timings, failures, creation time

A writer works in ``.tmp-<fingerprint>/`` under an exclusive lock; each finished chunk gets a
marker in ``progress/`` written after its data, so a killed run resumes and recomputes only the
chunks without a marker. ``publish`` renames the temporary directory to its final name, which is
atomic: readers see either no entry or a complete one. Two processes asking for the same entry
serialise on the lock; the second finds the published entry and reuses it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec

from mmpipe.store.fingerprint import fingerprint, key_material

TARGET_CHUNK_BYTES = 3 * 2**19  # 1.5 MiB: large enough for fast reads, small enough to resume cheaply
COMPRESSIONS = ("none", "lz4")
DTYPES = ("float16", "float32")


def chunk_rows_for(row_shape: Sequence[int], dtype: str) -> int:
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return max(1, TARGET_CHUNK_BYTES // max(1, row_bytes))


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


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
        meta = json.loads((path / "meta.json").read_text())
        key = json.loads((path / "key.json").read_text())
        return cls(path=path, name=meta["name"], fingerprint=path.name, key=key, meta=meta)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.meta["shape"])

    def _group(self) -> zarr.Group:
        return zarr.open_group(self.path, mode="r")

    def array_names(self) -> list[str]:
        return ["data", *self.meta.get("extras", {}), *self.meta.get("ragged", [])]

    def load(self, array: str = "data") -> torch.Tensor:
        """The whole array in memory as a tensor of the stored dtype (one bulk read, no per-row I/O)."""
        return torch.from_numpy(read_whole(self._group()[array], self.path / array))

    def valid(self) -> np.ndarray:
        """Boolean row mask: False where the media failed and the row holds no features."""
        return np.asarray(self._group()["valid"][...], dtype=bool)

    def failures(self) -> list[dict[str, Any]]:
        return list(self.meta.get("failures", []))

    def ragged(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(values [sum T_i, ...], offsets [N + 1]): row i is values[offsets[i]:offsets[i + 1]]."""
        group = self._group()
        values = torch.from_numpy(np.ascontiguousarray(group[f"{name}/values"][...]))
        offsets = torch.from_numpy(np.asarray(group[f"{name}/offsets"][...], dtype=np.int64))
        return values, offsets

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
    """

    def __init__(
        self,
        features_dir: Path,
        name: str,
        config: Any,
        *,
        n_rows: int,
        dim: int,
        dtype: str = "float16",
        compression: str = "none",
        extras: dict[str, Sequence[int]] | None = None,
        ragged: dict[str, Sequence[int]] | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        """``chunk_rows`` overrides the ~1.5 MiB default row chunk (it is not part of the key: it
        changes the resume granularity, not the values)."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
        _compressors(compression)  # validate early
        self.name = name
        self.key = key_material({"feature": name, **dict(config)})
        self.fingerprint = fingerprint(self.key)
        self.entry_dir = Path(features_dir) / name
        self.final = self.entry_dir / self.fingerprint
        self.tmp = self.entry_dir / f".tmp-{self.fingerprint}"
        self.n_rows, self.dim, self.dtype, self.compression = n_rows, dim, dtype, compression
        if chunk_rows is not None and chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, not {chunk_rows}")
        self.requested_chunk_rows = chunk_rows
        self.extras = {k: tuple(v) for k, v in (extras or {}).items()}
        self.ragged = {k: tuple(v) for k, v in (ragged or {}).items()}
        self.existing: FeatureEntry | None = None
        self._lock_file = None
        self._group: zarr.Group | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> FeatureWriter:
        self.entry_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.entry_dir / f".{self.fingerprint}.lock", "a+")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        if self.final.exists():
            self.existing = FeatureEntry.open(self.final)
        else:
            self._open_tmp()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _open_tmp(self) -> None:
        if (self.tmp / "key.json").exists():
            stored = json.loads((self.tmp / "key.json").read_text())
            if stored != self.key:  # impossible unless the directory was tampered with
                shutil.rmtree(self.tmp)
        if (self.tmp / "key.json").exists():
            self._group = zarr.open_group(self.tmp, mode="r+")
            self.chunk_rows = int(self._group.attrs["chunk_rows"])
            return
        if self.tmp.exists():  # created but never initialised: nothing in it is trustworthy
            shutil.rmtree(self.tmp)
        rows = self.requested_chunk_rows or chunk_rows_for((self.dim,), self.dtype)
        self.chunk_rows = min(rows, max(1, self.n_rows))
        group = zarr.open_group(self.tmp, mode="w", attributes={"chunk_rows": self.chunk_rows})
        compressors = _compressors(self.compression)
        group.create_array("data", shape=(self.n_rows, self.dim), chunks=(self.chunk_rows, self.dim),
                           dtype=self.dtype, compressors=compressors, fill_value=0)
        group.create_array("valid", shape=(self.n_rows,), chunks=(self.chunk_rows,), dtype="bool",
                           compressors=None, fill_value=False)
        for extra, shape in self.extras.items():
            group.create_array(extra, shape=(self.n_rows, *shape), chunks=(self.chunk_rows, *shape),
                               dtype=self.dtype, compressors=compressors, fill_value=0)
        (self.tmp / "progress").mkdir()
        # key.json last: its presence marks a fully initialised temporary entry
        _write_json(self.tmp / "key.json", self.key)
        self._group = group

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
        sequences: dict[str, list[np.ndarray]] | None = None,
    ) -> None:
        """Write rows ``chunk_bounds(index)``; then, and only then, mark the chunk complete.

        ``valid`` (bool per row, default all True) marks rows whose media failed; their ``failures``
        records ({"sample_id", "error"}) are kept with the entry.
        """
        assert self._group is not None, "use the writer as a context manager"
        start, stop = self.chunk_bounds(index)
        rows = stop - start
        array = _as_numpy(data, self.dtype)
        if array.shape != (rows, self.dim):
            raise ValueError(f"chunk {index}: expected shape {(rows, self.dim)}, got {array.shape}")
        valid = np.ones(rows, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if valid.shape != (rows,):
            raise ValueError(f"chunk {index}: valid mask must have {rows} entries")
        array[~valid] = 0  # the mask, not the value, says these rows are missing
        self._group["data"][start:stop] = array
        self._group["valid"][start:stop] = valid
        for extra in self.extras:
            values = _as_numpy((extras or {})[extra], self.dtype)
            self._group[extra][start:stop] = values
        for seq_name in self.ragged:
            parts = (sequences or {})[seq_name]
            if len(parts) != rows:
                raise ValueError(f"chunk {index}: {seq_name} needs {rows} sequences, got {len(parts)}")
            lengths = np.array([len(p) for p in parts], dtype=np.int64)
            flat = np.concatenate([_as_numpy(p, self.dtype) for p in parts]) if lengths.sum() else \
                np.zeros((0, *self.ragged[seq_name]), dtype=self.dtype)
            np.save(self.tmp / "progress" / f"{seq_name}.{index}.values.npy", flat)
            np.save(self.tmp / "progress" / f"{seq_name}.{index}.lengths.npy", lengths)
        _write_json(self._marker(index), {"failures": failures or []})

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
        for seq_name, shape in self.ragged.items():
            self._consolidate_ragged(seq_name, shape)
        record = {
            **(meta or {}),
            "name": self.name,
            "shape": [self.n_rows, self.dim],
            "dtype": self.dtype,
            "chunk_rows": self.chunk_rows,
            "compression": self.compression,
            "extras": {k: list(v) for k, v in self.extras.items()},
            "ragged": sorted(self.ragged),
            "failures": failures,
            "n_missing": len(failures),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
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

    def _consolidate_ragged(self, seq_name: str, shape: tuple[int, ...]) -> None:
        progress = self.tmp / "progress"
        values = [np.load(progress / f"{seq_name}.{i}.values.npy") for i in range(self.n_chunks)]
        lengths = np.concatenate([np.load(progress / f"{seq_name}.{i}.lengths.npy") for i in range(self.n_chunks)])
        offsets = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(values) if values else np.zeros((0, *shape), dtype=self.dtype)
        group = self._group
        row_chunk = chunk_rows_for(shape, self.dtype)
        group.create_array(f"{seq_name}/values", data=flat, chunks=(max(1, min(row_chunk, len(flat))), *shape),
                           compressors=_compressors(self.compression), overwrite=True)
        group.create_array(f"{seq_name}/offsets", data=offsets, compressors=None, overwrite=True)


def read_whole(array: zarr.Array, folder: Path) -> np.ndarray:
    """Read a whole array. Uncompressed row-chunked arrays take a fast path: each chunk file is
    read straight into its slice of one preallocated buffer (zarr's generic path decodes every
    chunk into a temporary and copies it, about 3x slower on 150 MB of float16). Anything else
    (compressed, other layouts) goes through zarr.
    """
    meta = array.metadata
    plain = (
        meta.zarr_format == 3
        and len(meta.codecs) == 1
        and getattr(meta.codecs[0], "endian", None) is not None
        and meta.codecs[0].endian.value == sys.byteorder
        and getattr(meta.chunk_key_encoding, "name", "") == "default"
        and array.chunks[1:] == array.shape[1:]
        and array.shape[0] > 0
    )
    if not plain:
        return np.ascontiguousarray(array[...])
    out = np.empty(array.shape, dtype=array.dtype)
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    rows, row_bytes = array.chunks[0], out[:1].nbytes
    for index in range(-(-array.shape[0] // rows)):
        start = index * rows * row_bytes
        stop = min((index + 1) * rows, array.shape[0]) * row_bytes
        key = meta.chunk_key_encoding.encode_chunk_key((index,) + (0,) * (array.ndim - 1))
        try:
            with open(folder / key, "rb", buffering=0) as handle:
                if handle.readinto(buffer[start:stop]) != stop - start:
                    raise OSError(f"{folder / key}: chunk file is truncated")
        except FileNotFoundError:  # never-written chunk: zarr semantics say fill value
            out.reshape(-1)[start // out.itemsize:stop // out.itemsize] = meta.fill_value
    return out


def _as_numpy(data: np.ndarray | torch.Tensor, dtype: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().to("cpu", torch.float32).numpy()
    return np.array(data, dtype=dtype, copy=True)
