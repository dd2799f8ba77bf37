"""Check every entry of a store, like fsck, and move damaged entries aside so they can be rebuilt.

`verify` reads everything a command could read, deeper than the commands do:

- ``STORE.json`` is a store marker (another layout version is refused, not checked);
- every manifest Parquet file reads as a manifest;
- every feature entry: ``meta.json`` and ``key.json`` read, ``key.json`` hashes to the entry's
  directory name, every array's ``zarr.json`` reads and agrees with ``meta.json``, every chunk file
  of every array exists, an uncompressed one holds exactly its chunk's bytes and a compressed one
  decodes, the group's ``zarr.json`` is a Zarr v3 group's, masks hold only 0 and 1, sequence
  lengths lie in ``0..T``, valid rows of ``data`` are finite;
- every run: ``run.json`` is a run record, ``key.json`` hashes to the directory name, the
  checkpoint's safetensors header reads and its tensors cover the file exactly, and every
  component listed in ``run.json`` plus the ``valid`` mask is checked as above (valid rows
  finite: a run is never published otherwise);
- every manifest version a feature entry or run was built on is in the store;
- the results DB (`mmpipe.store.results.db_problem`), and probe scores kept beside it after a
  failed write (reported as unfinished: the next probe saves them).

Uncompressed chunks carry no checksum: bytes overwritten in place at the right size are found
only where they make a value impossible (NaN/Inf, a mask byte other than 0/1, a length > T).

Each problem is a `Damaged` record (store/damage.py). Unfinished writes are not damage: a
feature entry's ``.tmp-*`` directory is resumable (the next run of the command that creates it
continues from its finished chunks); the temporary files of a killed run publish or DB creation
are leftovers, named with the process id that wrote them.

`repair` moves each damaged entry (the whole entry directory, manifest file or DB file) to
``<store>/damaged/<UTC time>/<its path in the store>`` — it never deletes — so the command that
created it rebuilds it; a damaged ``STORE.json`` is moved aside the same way and rewritten.
Leftovers whose process is gone are moved aside too; resumable entries are left in place.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from safetensors import SafetensorError, safe_open
from zarr.codecs import BytesCodec

from mmpipe.store.damage import ChunkDamage, Damaged, DamagedError, Kind, entry_chunks, read_json
from mmpipe.store.errors import UserError
from mmpipe.store.features import FeatureEntry, check_encoded_chunk, chunk_bytes, read_mask, read_whole
from mmpipe.store.manifest import read_manifest
from mmpipe.store.results import db_problem, spill_dir, spilled
from mmpipe.store.root import MARKER, Store, looks_like_store, marker_problem, write_marker
from mmpipe.store.runs import RunEntry, run_dirs
from mmpipe.store.writes import writing

DAMAGED_DIR = "damaged"


@dataclass(frozen=True)
class Unfinished:
    """A write that did not finish: ``resumable`` ones are continued by the next run of the
    command that creates them; the others are leftovers of a killed process (``pid``), moved
    aside by `repair` once that process is gone."""

    path: Path
    note: str
    resumable: bool
    pid: int | None = None

    def line(self) -> str:
        return f"{self.path}: {self.note}"


@dataclass(frozen=True)
class Report:
    root: Path
    damaged: tuple[Damaged, ...]
    unfinished: tuple[Unfinished, ...]
    manifests: int
    feature_entries: int
    runs: int
    results_db: bool  # whether there was a results DB to check

    @property
    def clean(self) -> bool:
        return not self.damaged


@dataclass(frozen=True)
class Moved:
    source: Path
    target: Path
    damaged: Damaged | None  # None for a leftover of a killed process


def verify(root: Path) -> Report:
    """Check the store at ``root`` (see the module docstring); raises UserError only when ``root``
    is no store at all or one of another layout."""
    root = Path(root)
    marker = root / MARKER
    if not marker.exists() and not looks_like_store(root):
        raise UserError(f"no mmpipe store at {root} (no {MARKER} and no store folders); nothing to verify")
    damaged: list[Damaged] = []
    problem = marker_problem(root)
    if problem is not None:
        damaged.append(Damaged(marker, "store marker", problem))
    else:
        Store.open(root)  # refuses another layout in one line
    store = Store(root)
    manifests = sorted(store.manifests_dir.glob("*/*.parquet")) if store.manifests_dir.is_dir() else []
    for path in manifests:
        damaged.extend(_problems(lambda p=path: read_manifest(p)))
    entries = [p for name in store.feature_names() for p in store.feature_dirs(name)]
    for path in entries:
        damaged.extend(_problems(lambda p=path: check_feature_entry(p)))
    runs = run_dirs(store.runs_dir)
    for path in runs:
        damaged.extend(_problems(lambda p=path: check_run(p)))
    opened = {d.path for d in damaged}
    damaged.extend(missing_manifests(store, [FeatureEntry.open(p) for p in entries if p not in opened],
                                     [RunEntry.open(p) for p in runs if p not in opened]))
    has_db = store.results_db.exists()
    if has_db:
        problem = db_problem(store.results_db)
        if problem is not None:
            damaged.append(Damaged(store.results_db, "results DB", problem))
    damaged.extend(_unreadable_spills(store))
    return Report(root, tuple(damaged), tuple(_unfinished(store)), len(manifests), len(entries), len(runs), has_db)


def missing_manifests(store: Store, features: Iterable[FeatureEntry], runs: Iterable[RunEntry]) -> list[Damaged]:
    """Manifest versions that these feature entries or runs were built on, but that the store
    lacks (deleted): their rows can no longer be matched to samples, splits or labels."""
    users: dict[tuple[str, str], list[Path]] = {}
    for entry in features:
        users.setdefault((entry.meta.get("dataset", ""), entry.meta.get("manifest_version", "")), []).append(entry.path)
    for run in runs:
        users.setdefault((run.record.dataset, run.record.manifest_version), []).append(run.path)
    found = []
    for (dataset, version), paths in sorted(users.items()):
        if dataset and version and version not in store.manifest_versions(dataset):
            found.append(Damaged(store.manifests_dir / dataset / f"{version}.parquet", "manifest",
                                 f"is missing, but {len(paths)} entr{'y was' if len(paths) == 1 else 'ies were'} built "
                                 f"on it (e.g. {paths[0]})"))
    return found


def _unreadable_spills(store: Store) -> list[Damaged]:
    """Probe scores kept after a failed DB write (store/results.py `spill`) that cannot be read back."""
    try:
        spilled(store.results_db)
    except UserError as error:
        return [Damaged(spill_dir(store.results_db), "results DB", str(error))]
    return []


def _problems(check) -> list[Damaged]:
    try:
        check()
    except DamagedError as error:
        return [error.damaged]
    return []


def check_feature_entry(path: Path) -> None:
    """Everything about one published feature entry; damage raises `DamagedError`."""
    entry = FeatureEntry.open(path)
    _check_group(path, "", "feature entry")
    with entry_chunks(path, "feature entry"):
        for name in ["valid", *entry.array_names()]:
            array = entry.array(name)
            _check_chunks(array, path / name)
        valid = read_mask(entry.array("valid"), path / "valid")
        if not np.isfinite(read_whole(entry.array("data"), path / "data")[valid]).all():
            raise ChunkDamage(path / "data", "holds NaN or Inf in valid rows")
        if entry.is_sequence:
            lengths = read_whole(entry.array("lengths"), path / "lengths")
            if lengths.size and (lengths.min() < 0 or lengths.max() > entry.row_shape[0]):
                raise ChunkDamage(path / "lengths", f"holds lengths outside 0..{entry.row_shape[0]}")


def check_run(path: Path) -> None:
    """Everything about one published run; damage raises `DamagedError`."""
    run = RunEntry.open(path)
    checkpoint = path / "checkpoint.safetensors"
    try:
        with safe_open(checkpoint, framework="pt") as handle:  # header, and tensors covering the file
            list(handle.keys())
    except FileNotFoundError:
        raise DamagedError(Damaged(path, "run", "checkpoint.safetensors is missing")) from None
    except (SafetensorError, OSError) as error:
        raise DamagedError(Damaged(path, "run", f"checkpoint.safetensors is unreadable ({error})")) from None
    _check_group(path / "components", "components/", "run")
    with entry_chunks(path, "run"):
        for name in ["valid", *run.component_names()]:
            _check_chunks(run.array(name), path / "components" / name)
    run.components()  # shapes against the valid mask, and the mask itself


def _check_group(folder: Path, where: str, kind: Kind) -> None:
    """A Zarr v3 group's own zarr.json says so (zarr opens "{}" as a group; readers never need it,
    but it is part of the entry)."""
    entry = folder if not where else folder.parent
    metadata = read_json(folder / "zarr.json", lambda reason: DamagedError(Damaged(entry, kind, f"{where}{reason}")))
    if not isinstance(metadata, dict) or metadata.get("zarr_format") != 3 or metadata.get("node_type") != "group":
        raise DamagedError(Damaged(entry, kind, f"{where}zarr.json is not the metadata of a Zarr v3 group"))


def _check_chunks(array: zarr.Array, folder: Path) -> None:
    """Every chunk file of ``array`` exists; uncompressed ones hold exactly their chunk's bytes
    (a stat each), compressed ones decode."""
    plain = len(array.metadata.codecs) == 1 and isinstance(array.metadata.codecs[0], BytesCodec)
    size = chunk_bytes(array)
    encode = array.metadata.chunk_key_encoding.encode_chunk_key
    for coords in itertools.product(*(range(n) for n in array.cdata_shape)):
        path = folder / encode(coords)
        if plain:
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                raise ChunkDamage(path, "is missing") from None
            if actual != size:
                raise ChunkDamage(path, f"{'is truncated' if actual < size else 'is longer than its chunk'} "
                                        f"({actual} bytes, not {size})")
        else:
            check_encoded_chunk(array, path)
            try:
                array.get_block_selection(coords)
            except (RuntimeError, ValueError) as error:
                raise ChunkDamage(path, f"does not decode ({type(error).__name__})") from None


def _unfinished(store: Store) -> list[Unfinished]:
    found = []
    for tmp in sorted(store.features_dir.glob("*/.tmp-*")) if store.features_dir.is_dir() else []:
        done = len(list((tmp / "progress").glob("*.json")))
        found.append(Unfinished(tmp, f"unfinished feature entry of {tmp.parent.name} with {done} finished chunk(s); "
                                     "the next run of the command that creates it resumes from them", True))
    for tmp in sorted(store.runs_dir.glob("*/.tmp-*")) if store.runs_dir.is_dir() else []:
        pid = _pid_of(tmp.name, _RUN_TMP)
        found.append(Unfinished(tmp, f"unpublished run left by process {pid} (a fit killed while publishing, "
                                     "or one publishing now); `mmpipe fit` never reads it", False, pid))
    for tmp in sorted(store.root.glob(f".{store.results_db.name}.*.tmp*")):
        pid = _pid_of(tmp.name, _DB_TMP)
        found.append(Unfinished(tmp, f"results DB being created by process {pid} (or left when it was killed); "
                                     "never read", False, pid))
    for kept in _readable_spills(store):
        found.append(Unfinished(kept.path, f"{len(kept.probes)} probe scores of {kept.run.run_id} kept after a failed "
                                           "write to the results DB; the next `mmpipe probe` saves them", True))
    for tmp in sorted(store.manifests_dir.glob("*/.*.tmp")) if store.manifests_dir.is_dir() else []:
        found.append(Unfinished(tmp, "temporary manifest file of an interrupted write; never read", False))
    return found


def _readable_spills(store: Store) -> list:
    try:
        return spilled(store.results_db)
    except UserError:
        return []  # reported as damage


_RUN_TMP = re.compile(r"-(\d+)$")  # runs/<method>/.tmp-<fingerprint>-<pid> (store/runs.py)
_DB_TMP = re.compile(r"\.(\d+)\.tmp(\.wal)?$")  # .results.duckdb.<pid>.tmp[.wal] (store/results.py)


def _pid_of(name: str, pattern: re.Pattern[str]) -> int | None:
    match = pattern.search(name)
    return int(match.group(1)) if match else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def repair(report: Report) -> list[Moved]:
    """Move every damaged entry of ``report``, and every leftover whose process is gone, to
    ``<store>/damaged/<UTC time>/``; rewrite a damaged ``STORE.json``. Returns what was moved."""
    root = report.root
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target_dir = root / DAMAGED_DIR / stamp
    for n in itertools.count(2):
        if not target_dir.exists():
            break
        target_dir = root / DAMAGED_DIR / f"{stamp}-{n}"
    moved = []
    for damaged in report.damaged:
        if damaged.path.exists():
            moved.append(Moved(damaged.path, _move(damaged.path, root, target_dir), damaged))
        if damaged.kind == "results DB" and damaged.path.with_name(damaged.path.name + ".wal").exists():
            wal = damaged.path.with_name(damaged.path.name + ".wal")
            moved.append(Moved(wal, _move(wal, root, target_dir), damaged))
        if damaged.kind == "store marker":
            write_marker(root)
    for unfinished in report.unfinished:
        if not unfinished.resumable and not _alive(unfinished.pid) and unfinished.path.exists():
            moved.append(Moved(unfinished.path, _move(unfinished.path, root, target_dir), None))
    return moved


def _move(path: Path, root: Path, target_dir: Path) -> Path:
    target = target_dir / path.relative_to(root)
    with writing(f"(move aside) {path}", target):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)  # same filesystem: atomic, nothing copied, nothing deleted
    return target

