"""Export a run's components or a feature entry, with its manifest columns, for other tools.

One table per split (Hugging Face split names: ``train``, ``validation``, ``test``; a split
without rows is left out, as ``load_from_disk`` cannot read an empty one), rows in manifest order, columns: ``sample_id``, ``split`` (mmpipe's: train/val/test), ``group``, every
label column of the manifest, ``valid`` (False: the row's media or inputs failed, and its values
are null), then

- a run: one column per component (``z_s``, ``z_m1``, ...), each row a float32 list of length r;
- a pooled feature entry: ``features``, each row a float32 list of length D (float32, whatever
  the stored dtype);
- a sequence entry: ``features``, each row its ``length`` valid steps as a list of float32 lists
  of length D (the end padding is dropped), and ``length``.

Formats: ``hf`` writes a ``datasets.DatasetDict`` with ``save_to_disk`` (read back with
``datasets.load_from_disk``); ``parquet`` one file per split, ``<split>.parquet``. The output
directory is written under a temporary name beside it and renamed into place when complete; an
existing non-empty directory is never written into.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SPLITS, Manifest

if TYPE_CHECKING:  # the store (and torch) load when exporting, not when the CLI starts
    from mmpipe.store.root import Store

FORMATS = ("hf", "parquet")
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class Exported:
    """What is written: the source's name and one Arrow table per (Hugging Face) split."""

    source: str  # a run id, or a feature entry name with its fingerprint prefix
    tables: dict[str, pa.Table]


def _vectors(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """(n, d) float32 rows → a fixed-size list column, null where not valid."""
    n, d = values.shape
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, d, mask=pa.array(~valid) if n else None)


def _sequences(values: np.ndarray, lengths: np.ndarray, valid: np.ndarray) -> pa.Array:
    """(n, T, d) rows with their valid steps → a list of fixed-size lists per row (padding dropped)."""
    n, _, d = values.shape
    steps = np.concatenate([values[i, :lengths[i]] for i in range(n)]) if n else np.zeros((0, d), np.float32)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(steps, np.float32).reshape(-1)), d)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, inner, mask=pa.array(~valid))


def _manifest_columns(manifest: Manifest, rows: np.ndarray) -> dict[str, pa.Array]:
    table = manifest.table.iloc[rows]
    columns = {"sample_id": pa.array(table["sample_id"].astype(str).tolist()),
               "split": pa.array(table["split"].astype(str).tolist()),
               "group": pa.array([None if g is None or g != g else str(g) for g in table["group"].tolist()],
                                 type=pa.string())}
    for spec in manifest.labels:
        columns[spec.name] = pa.array(table[spec.name].tolist(), from_pandas=True)
    return columns


def _per_split(manifest: Manifest, valid: np.ndarray, columns: dict[str, np.ndarray],
               lengths: np.ndarray | None = None) -> dict[str, pa.Table]:
    tables = {}
    for split in SPLITS:
        rows = np.flatnonzero(manifest.split_mask(split))
        arrays = _manifest_columns(manifest, rows)
        arrays["valid"] = pa.array(valid[rows])
        for name, values in columns.items():
            if lengths is None:
                arrays[name] = _vectors(values[rows], valid[rows])
            else:
                arrays[name] = _sequences(values[rows], np.where(valid[rows], lengths[rows], 0), valid[rows])
        if lengths is not None:
            arrays["length"] = pa.array(np.where(valid[rows], lengths[rows], 0).astype(np.int64))
        if len(rows):
            tables[HF_SPLITS[split]] = pa.table(arrays)
    return tables


def collect(store: Store, what: str, fingerprint: str | None = None) -> Exported:
    """The tables of a run (``what`` = its id or a unique prefix) or of a feature entry (``what`` =
    ``<dataset>.<modality>.<feature>``; ``fingerprint`` picks one of several entries)."""
    if "." in what:
        parts = what.split(".")
        if len(parts) != 3 or not all(p and "/" not in p and "\\" not in p for p in parts):
            raise UserError(f"{what!r} is neither a run id nor a feature entry name <dataset>.<modality>.<feature>")
        entry = store.features(what, fingerprint_prefix=fingerprint)
        manifest = store.manifest_of(entry)
        if entry.shape[0] != len(manifest):
            raise UserError(f"{what} has {entry.shape[0]} rows but manifest {manifest.dataset} has {len(manifest)}")
        lengths = entry.lengths()
        values = entry.load().float().numpy()
        tables = _per_split(manifest, entry.valid(), {"features": values},
                            None if lengths is None else lengths.numpy())
        return Exported(f"{what} [{entry.fingerprint[:12]}]", tables)
    if fingerprint is not None:
        raise UserError("--fingerprint picks a feature entry; a run is named by its id")
    run = store.run(what)
    manifest = store.manifest(run.record.dataset, run.record.manifest_version)
    valid = run.valid()
    if len(valid) != len(manifest):
        raise UserError(f"run {run.run_id} has {len(valid)} rows but manifest {run.record.dataset} has {len(manifest)}")
    components = {name: value.numpy() for name, value in run.components().items()}
    return Exported(run.run_id, _per_split(manifest, valid, components))


def check_out(out: Path) -> None:
    """Refuse, before any work, an --out that is a file, lies under one, or is a non-empty directory."""
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--out {out}: {blocking} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} is not empty; export never writes into a non-empty directory")


def write(exported: Exported, fmt: str, out: Path) -> list[Path]:
    """Write ``exported`` as ``fmt`` into the new or empty directory ``out``; returns the files written."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if fmt == "hf":
            import datasets  # slow to import: only when asked for

            splits = {name: datasets.Dataset(table) for name, table in exported.tables.items()}
            quiet = datasets.utils.are_progress_bars_disabled()
            datasets.disable_progress_bars()  # the command prints its own one line
            try:
                datasets.DatasetDict(splits).save_to_disk(str(tmp))
            finally:
                if not quiet:
                    datasets.enable_progress_bars()
        else:
            tmp.mkdir()
            for name, table in exported.tables.items():
                pq.write_table(table, tmp / f"{name}.parquet")
        check_out(out)  # still new or empty: nothing appeared there while writing
        os.replace(tmp, out)  # an empty directory is replaced whole
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in out.rglob("*") if p.is_file())
