"""folder: any table of samples (CSV or Parquet) with media paths or texts per modality.

Layout: ``<data_dir>/<table>`` (default ``samples.csv``; ``.parquet`` is read as Parquet) with

- ``sample_id`` (unique),
- ``m1`` and/or ``m2``: a media path (relative to ``data_dir`` or absolute) or, for text, the text;
  paths are stored as written, so a tree with relative paths can move without changing the
  manifest version (and so without re-extraction),
- optional ``split`` (train/val/test) and ``group`` (e.g. speaker, kept within one split),
- every other column is a label.

What each modality is (``m1_kind``, ``m2_kind``: audio, video, image, text or none) and how each
label is read (``labels``: entries ``name:kind:owner``, kind categorical|continuous, owner
shared|m1|m2|joint) are config fields, e.g. ``--set labels=emotion:categorical:shared``.
Undeclared label columns default to kind by dtype (float → continuous, anything else →
categorical) and owner ``joint``: a generic table says nothing about which component should carry
a label, so the neutral choice is made and ``mmpipe info`` shows it.

Without a ``split`` column, rows get a seeded random train/val/test split; with a ``group``
column that assignment is made per group, so the split is group-disjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.base import DATASETS, Dataset
from mmpipe.pipeline.datasets.splits import check_fractions, random_split
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SPLITS, LabelSpec, Manifest

Kind = Literal["audio", "video", "image", "text", "none"]
RESERVED = ("sample_id", "split", "group", "m1", "m2")


@dataclass(frozen=True)
class FolderConfig:
    data_dir: str = "."
    table: str = "samples.csv"
    m1_kind: Kind = "video"
    m2_kind: Kind = "audio"
    labels: tuple[str, ...] = ()
    seed: int = 0
    train_frac: float = 0.7
    val_frac: float = 0.15


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=True)
    except Exception as error:  # pandas/pyarrow raise many types for a malformed file
        raise UserError(f"folder: cannot read {path}: {type(error).__name__}: {error}".splitlines()[0]) from None


def _label_specs(table: pd.DataFrame, declared: tuple[str, ...]) -> tuple[LabelSpec, ...]:
    specs: dict[str, LabelSpec] = {}
    for entry in declared:
        parts = entry.split(":")
        if len(parts) != 3:
            raise UserError(f"folder: label {entry!r} must be name:kind:owner (e.g. emotion:categorical:shared)")
        name, kind, owner = parts
        if name not in table.columns or name in RESERVED:
            raise UserError(f"folder: declared label {name!r} is not a label column of the table")
        try:
            specs[name] = LabelSpec(name, kind, owner)  # type: ignore[arg-type]
        except ValueError as error:
            raise UserError(f"folder: {error}") from None
    for column in table.columns:
        if column in RESERVED or column in specs:
            continue
        kind = "continuous" if pd.api.types.is_float_dtype(table[column]) else "categorical"
        specs[column] = LabelSpec(column, kind, "joint", "undeclared label: kind from dtype, owner joint")
    return tuple(specs[c] for c in table.columns if c in specs)


def _group_split(groups: pd.Series, train: float, val: float, seed: int) -> np.ndarray:
    """Whole groups go to one split: the random split is drawn over the distinct groups."""
    names = pd.unique(groups.astype(str))
    assignment = dict(zip(names, random_split(len(names), train, val, seed), strict=True))
    return groups.astype(str).map(assignment).to_numpy()


@DATASETS.register("folder")
class Folder(Dataset):
    name = "folder"
    description = "any CSV/Parquet table: sample_id, m1/m2 media paths or text, labels, optional split/group"
    Config = FolderConfig
    modalities = {"m1": "video", "m2": "audio"}  # defaults; the config's m1_kind/m2_kind decide

    def modality_kinds(self, config: FolderConfig) -> dict[str, str]:
        return {m: k for m, k in (("m1", config.m1_kind), ("m2", config.m2_kind)) if k != "none"}

    def manifest(self, config: FolderConfig) -> Manifest:
        root = Path(config.data_dir)
        if not root.is_dir():
            raise UserError(f"folder: data directory {root} does not exist; expected {root}/{config.table} "
                            f"listing sample_id, m1/m2 and label columns")
        path = Path(config.table) if Path(config.table).is_absolute() else root / config.table
        if not path.is_file():
            raise UserError(f"folder: no table at {path}; expected a CSV or Parquet file with sample_id, m1/m2 "
                            f"and label columns (set another with --set table=NAME)")
        table = _read_table(path)
        kinds = self.modality_kinds(config)
        missing = [c for c in ("sample_id", *kinds) if c not in table.columns]
        if missing:
            raise UserError(f"folder: {path} lacks column(s) {', '.join(missing)} "
                            f"(has {', '.join(map(str, table.columns))})")
        if table["sample_id"].isna().any() or table["sample_id"].astype(str).duplicated().any():
            raise UserError(f"folder: {path} has empty or duplicate sample_id values")
        table["sample_id"] = table["sample_id"].astype(str)
        for modality, kind in kinds.items():
            if kind != "text":  # kept as written: relative ones resolve against data_dir (media_root)
                table[modality] = [p if isinstance(p, str) else "" for p in table[modality]]
        has_group = "group" in table.columns
        if not has_group:
            table["group"] = pd.Series([None] * len(table), dtype="object")
        else:
            table["group"] = table["group"].astype(str)
        if "split" in table.columns:
            bad = sorted(set(table["split"].astype(str)) - set(SPLITS))
            if bad:
                raise UserError(f"folder: {path} has split values {bad}; valid: {', '.join(SPLITS)}")
            table["split"] = table["split"].astype(str)
            protocol = f"given by the split column of {path.name}"
        else:
            check_fractions(config.train_frac, config.val_frac)
            if has_group:
                table["split"] = _group_split(table["group"], config.train_frac, config.val_frac, config.seed)
                protocol = f"group-disjoint random {config.train_frac:.0%}/{config.val_frac:.0%}/rest, seed {config.seed}"
            else:
                table["split"] = random_split(len(table), config.train_frac, config.val_frac, config.seed)
                protocol = f"random {config.train_frac:.0%}/{config.val_frac:.0%}/rest, seed {config.seed}"
            table["split"] = table["split"].astype(str)
        labels = _label_specs(table, config.labels)
        columns = ["sample_id", "split", "group", *kinds, *(s.name for s in labels)]
        return Manifest("folder", table[columns].reset_index(drop=True), labels,
                        {m: m for m in kinds}, protocol)
