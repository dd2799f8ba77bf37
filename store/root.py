"""The store root: where manifests, feature entries, runs and the results DB live.

::

    <root>/STORE.json                                marks the directory as an mmpipe store
    <root>/manifests/<dataset>/<version>.parquet     one file per manifest version
    <root>/features/<dataset>.<feature>/<fingerprint>/   Zarr entries (see store/features.py)
    <root>/runs/<method>/<fingerprint>/              adapter runs (checkpoint, components)
    <root>/results.duckdb                            probe scores and run rows
    <root>/cache/stat-memo.json                      memoised file hashes (see store/statmemo.py)

The root comes from ``--store`` or ``MMPIPE_STORE``; default ``./mmpipe-store``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mmpipe.store.damage import Damaged, DamagedError, Listing, read_json
from mmpipe.store.errors import KeyMismatchError, UserError
from mmpipe.store.features import FeatureEntry, FeatureWriter, entry_key
from mmpipe.store.fingerprint import differing_fields, fingerprint, key_material
from mmpipe.store.manifest import Manifest, read_manifest, write_manifest
from mmpipe.store.runs import RunEntry, get_run, list_runs, scan_runs
from mmpipe.store.statmemo import StatMemo
from mmpipe.store.writes import writing

DEFAULT_ROOT = "mmpipe-store"
ENV_VAR = "MMPIPE_STORE"
MARKER = "STORE.json"
# Layout 2: named modalities (manifests list them with their kinds; label owners are modality
# names; feature entries are <dataset>.<modality>.<feature>), typed run records, (T, D) sequences.
FORMAT = {"format": "mmpipe-store", "layout_version": 2}


def default_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_ROOT)


@dataclass(frozen=True)
class SplitFeatures:
    """One split of a feature entry, in memory: rows follow the manifest order."""

    features: torch.Tensor  # (n, D) or, for a sequence entry, (n, T, D); stored dtype
    rows: pd.DataFrame  # the manifest rows of those samples
    valid: torch.Tensor  # (n,) bool; False rows hold no features
    lengths: torch.Tensor | None = None  # (n,) int64 valid steps per row; None for pooled rows


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path | str | None = None, *, create: bool = False) -> Store:
        """Open an existing store; with ``create``, make one where nothing is yet.

        A directory that exists, is not empty and has no STORE.json is refused, so a typo in
        ``--store`` never scatters files into an unrelated folder.
        """
        root = Path(root) if root is not None else default_root()
        marker = root / MARKER
        if marker.exists() or looks_like_store(root):
            problem = marker_problem(root)
            if problem is not None:
                raise DamagedError(Damaged(marker, "store marker", problem))
            _check_layout(root)
            return cls(root)
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} is a file, not an mmpipe store directory")
        if root.is_dir() and any(root.iterdir()):
            raise UserError(f"{root} is not an mmpipe store (no {MARKER}); pass an empty or new directory")
        if not create:
            raise UserError(f"no mmpipe store at {root}; create one with `mmpipe simulate` or `mmpipe extract`")
        write_marker(root)
        return cls(root)

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def results_db(self) -> Path:
        return self.root / "results.duckdb"

    @property
    def stat_memo(self) -> StatMemo:
        return StatMemo(self.root / "cache" / "stat-memo.json")

    # -- manifests -----------------------------------------------------------------------------
    def save_manifest(self, manifest: Manifest) -> str:
        """Store a manifest under its version, once; a damaged file already there raises
        `DamagedError` rather than being trusted (or silently replaced)."""
        version = manifest.version()
        path = self.manifests_dir / manifest.dataset / f"{version}.parquet"
        if path.exists():
            read_manifest(path)
        else:
            write_manifest(path, manifest)
        return version

    def manifest_versions(self, dataset: str) -> list[str]:
        folder = self.manifests_dir / dataset
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []

    def datasets(self) -> list[str]:
        if not self.manifests_dir.is_dir():
            return []
        return sorted(p.name for p in self.manifests_dir.iterdir() if p.is_dir() and self.manifest_versions(p.name))

    def manifest(self, dataset: str, version: str | None = None) -> Manifest:
        versions = self.manifest_versions(dataset)
        if not versions:
            known = ", ".join(self.datasets()) or "none"
            raise UserError(f"the store holds no manifest for {dataset!r} (datasets in store: {known})")
        chosen = _choose(versions, version, f"manifest version of {dataset}")
        return read_manifest(self.manifests_dir / dataset / f"{chosen}.parquet")

    def manifest_of(self, entry: FeatureEntry) -> Manifest:
        """The manifest a feature entry was published against (its metadata names it)."""
        dataset, version = entry.meta.get("dataset"), entry.meta.get("manifest_version")
        if dataset is None or version is None:
            raise UserError(f"{entry.name} [{entry.fingerprint[:12]}] names no manifest in its metadata")
        return self.manifest(dataset, version)

    # -- features ------------------------------------------------------------------------------
    def writer(self, name: str, config: dict[str, Any], **kwargs: Any) -> FeatureWriter:
        return FeatureWriter(self.features_dir, name, config, **kwargs)

    def published(self, name: str, config: dict[str, Any]) -> FeatureEntry | None:
        """The published entry ``store.writer(name, config)`` would find, or None (nothing locked or written)."""
        path = self.features_dir / name / fingerprint(entry_key(name, config))
        return FeatureEntry.open(path) if path.is_dir() else None

    def unfinished(self, name: str, config: dict[str, Any]) -> tuple[tuple[int, ...], int] | None:
        """(shape, bytes written) of the temporary entry an interrupted writer of (name, config)
        left, or None when there is none (or it was never fully initialised)."""
        tmp = self.features_dir / name / f".tmp-{fingerprint(entry_key(name, config))}"
        try:
            shape = tuple(json.loads((tmp / "data" / "zarr.json").read_text())["shape"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not (tmp / "key.json").is_file():
            return None
        return shape, sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())

    def feature_names(self) -> list[str]:
        """Names with at least one published entry, intact or damaged."""
        if not self.features_dir.is_dir():
            return []
        return sorted(p.name for p in self.features_dir.iterdir() if p.is_dir() and self.feature_dirs(p.name))

    def feature_dirs(self, name: str) -> list[Path]:
        """The published entry directories of ``name`` (``.tmp-*`` and lock files excluded)."""
        folder = self.features_dir / name
        if not folder.is_dir():
            return []
        return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]

    def scan_features(self, name: str | None = None) -> Listing[FeatureEntry]:
        """The entries (of ``name``, or of every name) that open, and a `Damaged` record for each
        that does not."""
        entries, damaged = [], []
        for entry_name in [name] if name is not None else self.feature_names():
            for path in self.feature_dirs(entry_name):
                try:
                    entries.append(FeatureEntry.open(path))
                except DamagedError as error:
                    damaged.append(error.damaged)
        return Listing(tuple(entries), tuple(damaged))

    def feature_entries(self, name: str | None = None) -> list[FeatureEntry]:
        """Every intact entry, damaged ones skipped (`scan_features` names them). Asking for one
        ``name`` raises the `DamagedError` of a damaged entry of that name instead: the caller is
        about to use these entries, and damage must not read as "not stored"."""
        listing = self.scan_features(name)
        if name is not None and listing.damaged:
            raise DamagedError(listing.damaged[0])
        return list(listing.entries)

    def features(self, name: str, config: dict[str, Any] | None = None, *, fingerprint_prefix: str | None = None,
                 ) -> FeatureEntry:
        """Find a published entry: by its config (exact key), by fingerprint prefix, or the only one.

        A config that matches no stored entry raises KeyMismatchError naming the differing fields.
        """
        entries = self.feature_entries(name)
        if not entries:
            known = ", ".join(self.feature_names()) or "none"
            raise UserError(f"the store holds no features named {name!r} (features in store: {known})")
        if config is not None:
            wanted = key_material({"feature": name, **dict(config)})
            key = fingerprint(wanted)
            for entry in entries:
                if entry.fingerprint == key:  # opening it checked that its key.json hashes to this
                    return entry
            fields = sorted({f for e in entries for f in differing_fields(e.key, wanted)})
            raise KeyMismatchError(
                f"no stored {name} entry matches the requested config; stored entries differ in: {', '.join(fields)}")
        chosen = _choose([e.fingerprint for e in entries], fingerprint_prefix, f"entry of {name}")
        return next(e for e in entries if e.fingerprint == chosen)

    def load_split(self, entry: FeatureEntry, manifest: Manifest, split: str | None = None) -> SplitFeatures:
        """Rows of one split (all rows with ``split=None``), read in bulk from one entry."""
        if entry.shape[0] != len(manifest):
            raise UserError(f"{entry.name} has {entry.shape[0]} rows but manifest {manifest.dataset} has {len(manifest)}")
        valid = torch.from_numpy(entry.valid())
        lengths = entry.lengths()
        if split is None:
            return SplitFeatures(entry.load(), manifest.table, valid, lengths)
        mask = manifest.split_mask(split)
        index = torch.from_numpy(mask.nonzero()[0])
        return SplitFeatures(entry.load(rows=index), manifest.table.loc[mask].reset_index(drop=True), valid[index],
                             None if lengths is None else lengths[index])


    # -- runs ----------------------------------------------------------------------------------
    def runs(self, method: str | None = None) -> list[RunEntry]:
        """The runs that open; damaged ones are skipped (`scan_runs` names them)."""
        return list_runs(self.runs_dir, method)

    def scan_runs(self, method: str | None = None) -> Listing[RunEntry]:
        return scan_runs(self.runs_dir, method)

    def run(self, run_id: str) -> RunEntry:
        return get_run(self.runs_dir, run_id)


def write_marker(root: Path) -> None:
    """Create ``root`` if needed and (re)write its STORE.json atomically."""
    with writing("the store marker", root / MARKER):
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{MARKER}.tmp"
        try:
            tmp.write_text(json.dumps(FORMAT, indent=1))
            os.replace(tmp, root / MARKER)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def looks_like_store(root: Path) -> bool:
    """Whether ``root`` holds a store's folders (so a missing STORE.json is damage, not "no store")."""
    return any((root / folder).is_dir() for folder in ("manifests", "features", "runs"))


def marker_problem(root: Path) -> str | None:
    """What is wrong with ``root/STORE.json`` as a store marker, or None. Another layout version
    is not damage (`Store.open` refuses it with how to rebuild)."""
    try:
        data = read_json(root / MARKER, lambda reason: DamagedError(Damaged(root / MARKER, "store marker", reason)))
    except DamagedError as error:
        return error.damaged.reason
    if not isinstance(data, dict) or data.get("format") != FORMAT["format"] \
            or not isinstance(data.get("layout_version"), int) or isinstance(data.get("layout_version"), bool):
        return f"{MARKER} does not hold a store marker like {json.dumps(FORMAT)}"
    return None


def _check_layout(root: Path) -> None:
    """Refuse a store of another layout in one line, rather than misread it."""
    layout = json.loads((root / MARKER).read_text())["layout_version"]  # marker_problem checked it
    if layout != FORMAT["layout_version"]:
        raise UserError(f"{root} was written by mmpipe store layout {layout}, this mmpipe reads layout "
                        f"{FORMAT['layout_version']}: rebuild it in a new store (the commands that made it, "
                        f"e.g. `mmpipe simulate` / `mmpipe extract`, with --store NEW_DIR)")


def _choose(options: Sequence[str], prefix: str | None, what: str) -> str:
    if prefix is not None:
        matches = [o for o in options if o.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        problem = "matches none" if not matches else "is ambiguous"
        raise UserError(f"{what}: {prefix!r} {problem}; stored: {', '.join(o[:12] for o in options)}")
    if len(options) == 1:
        return options[0]
    raise UserError(f"several {what} are stored ({', '.join(o[:12] for o in options)}); choose one by prefix")
