"""folder: any table of samples (CSV or Parquet) with media paths or texts per named modality.

Layout: ``<data_dir>/<table>`` (default ``samples.csv``; ``.parquet`` is read as Parquet) with

- ``sample_id`` (unique),
- one column per modality: a media path (relative to ``data_dir`` or absolute) or, for text, the
  text; paths are stored as written, so a tree with relative paths can move without changing the
  manifest version (and so without re-extraction),
- optional ``split`` (train/val/test) and ``group`` (e.g. speaker, kept within one split),
- every other column is a label.

The modalities (``modalities``: entries ``name:kind``, any number, in order; kind audio, video,
image or text; the column called ``name`` holds the media, or ``name:kind:column`` names another
column) and how each label is read (``labels``: entries ``name:kind:owner``, kind
categorical|continuous, owner shared, joint or one of the modality names) are config fields, e.g.
``--set modalities=video:video,audio:audio,text:text --set labels=emotion:categorical:shared``.
The default is ``video:video,audio:audio``. Undeclared label columns default to kind by dtype
(float → continuous, anything else → categorical) and owner ``joint``: a generic table says nothing
about which component should carry a label, so the neutral choice is made and ``mmpipe info``
shows it.

``name`` (``--name``) is the dataset's name in the store (default ``folder``): two tables
extracted under different names keep apart manifests and features (``<name>.<modality>.<encoder>``).

Without a ``split`` column, rows get a seeded random train/val/test split; with a ``group``
column that assignment is made per group, so the split is group-disjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd

from mmpipe.pipeline.datasets.base import DATASETS, Dataset, check_custom_name
from mmpipe.pipeline.datasets.splits import check_fractions, group_split, random_split
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import OWNERS_BESIDE_MODALITIES, SPLITS, LabelSpec, Manifest, Modality
from mmpipe.store.ranges import FRACTION, SEED, SHARE, Checked

MEDIA_KINDS = ("audio", "video", "image", "text")  # what a table column can hold (no "features")
RESERVED = ("sample_id", "split", "group")


@dataclass(frozen=True)
class FolderConfig(Checked):
    data_dir: str = "."
    name: str = "folder"  # the dataset's name in the store (--name), so two folders are kept apart
    table: str = "samples.csv"
    modalities: tuple[str, ...] = ("video:video", "audio:audio")  # name:kind or name:kind:column, in order
    labels: tuple[str, ...] = ()  # name:kind:owner, owner shared|joint|a modality name
    seed: Annotated[int, SEED] = 0
    train_frac: Annotated[float, FRACTION] = 0.7  # train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15

    def check(self) -> None:
        check_fractions(self.train_frac, self.val_frac)
        check_custom_name(self.name, "folder")


def parse_modalities(entries: tuple[str, ...]) -> tuple[Modality, ...]:
    """``("video:video", "text:text:caption")`` -> the named modalities with their columns; a bad
    entry is a one-line UserError."""
    if not entries:
        raise UserError("folder: modalities is empty; name at least one as name:kind "
                        "(e.g. --set modalities=audio:audio)")
    modalities: list[Modality] = []
    for entry in entries:
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise UserError(f"folder: modality {entry!r} must be name:kind or name:kind:column "
                            f"(e.g. video:video or text:text:caption)")
        name, kind = parts[0], parts[1]
        column = parts[2] if len(parts) == 3 else name
        if kind not in MEDIA_KINDS:
            raise UserError(f"folder: modality {name!r} has kind {kind!r}; a table column holds one of "
                            f"{', '.join(MEDIA_KINDS)}")
        if column in RESERVED:
            raise UserError(f"folder: modality {name!r} cannot read the {column} column")
        try:
            modality = Modality(name, kind, column)
        except ValueError as error:
            raise UserError(f"folder: {error}") from None
        for other in modalities:
            if other.name == name:
                raise UserError(f"folder: modality {name!r} is named twice in modalities")
            if other.column == column:
                raise UserError(f"folder: modalities {other.name!r} and {name!r} both read column {column!r}")
        modalities.append(modality)
    return tuple(modalities)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=True)
    except Exception as error:  # pandas/pyarrow raise many types for a malformed file
        raise UserError(f"folder: cannot read {path}: {type(error).__name__}: {error}".splitlines()[0]) from None


def _label_specs(table: pd.DataFrame, declared: tuple[str, ...], modalities: tuple[Modality, ...]) -> tuple[LabelSpec, ...]:
    """Declared ``name:kind:owner`` entries, then every other column with kind from its dtype, owner joint."""
    not_labels = {*RESERVED, *(m.column for m in modalities)}
    owners = (*OWNERS_BESIDE_MODALITIES, *(m.name for m in modalities))
    specs: dict[str, LabelSpec] = {}
    for entry in declared:
        parts = entry.split(":")
        if len(parts) != 3:
            raise UserError(f"folder: label {entry!r} must be name:kind:owner (e.g. emotion:categorical:shared)")
        name, kind, owner = parts
        if name not in table.columns or name in not_labels:
            raise UserError(f"folder: declared label {name!r} is not a label column of the table")
        if owner not in owners:
            raise UserError(f"folder: label {name!r} has owner {owner!r}; valid: {', '.join(owners)}")
        try:
            specs[name] = LabelSpec(name, kind, owner)  # type: ignore[arg-type]
        except ValueError as error:
            raise UserError(f"folder: {error}") from None
    for column in table.columns:
        if column in not_labels or column in specs:
            continue
        kind = "continuous" if pd.api.types.is_float_dtype(table[column]) else "categorical"
        specs[column] = LabelSpec(column, kind, "joint", "undeclared label: kind from dtype, owner joint")
    return tuple(specs[c] for c in table.columns if c in specs)


@DATASETS.register("folder")
class Folder(Dataset):
    name = "folder"
    description = "any CSV/Parquet table: sample_id, a media path or text per named modality, labels, optional split/group"
    Config = FolderConfig
    # the defaults; the config's modalities decide
    modalities = tuple(Modality(m.name, m.kind) for m in parse_modalities(FolderConfig.modalities))

    def manifest(self, config: FolderConfig) -> Manifest:
        modalities = parse_modalities(config.modalities)
        media_columns = [m.column for m in modalities]
        expected = f"sample_id, the modality column(s) {', '.join(media_columns)} and label columns"
        root = Path(config.data_dir)
        if not root.is_dir():
            raise UserError(f"folder: data directory {root} does not exist; expected {root}/{config.table} "
                            f"listing {expected}")
        path = Path(config.table) if Path(config.table).is_absolute() else root / config.table
        if not path.is_file():
            raise UserError(f"folder: no table at {path}; expected a CSV or Parquet file with {expected} "
                            f"(set another with --set table=NAME)")
        table = _read_table(path)
        missing = [c for c in ("sample_id", *media_columns) if c not in table.columns]
        if missing:
            raise UserError(f"folder: {path} lacks column(s) {', '.join(missing)} "
                            f"(has {', '.join(map(str, table.columns))}); name the modality columns with "
                            f"--set modalities=name:kind,... (now {','.join(config.modalities)})")
        if table["sample_id"].isna().any() or table["sample_id"].astype(str).duplicated().any():
            raise UserError(f"folder: {path} has empty or duplicate sample_id values")
        table["sample_id"] = table["sample_id"].astype(str)
        for modality in modalities:
            if modality.kind != "text":  # kept as written: relative ones resolve against data_dir (media_root)
                table[modality.column] = [p if isinstance(p, str) else "" for p in table[modality.column]]
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
            if has_group:
                table["split"] = group_split(table["group"].astype(str).to_numpy(), config.train_frac, config.val_frac,
                                             config.seed)
                protocol = f"group-disjoint random {config.train_frac:.0%}/{config.val_frac:.0%}/rest, seed {config.seed}"
            else:
                table["split"] = random_split(len(table), config.train_frac, config.val_frac, config.seed)
                protocol = f"random {config.train_frac:.0%}/{config.val_frac:.0%}/rest, seed {config.seed}"
            table["split"] = table["split"].astype(str)
        labels = _label_specs(table, config.labels, modalities)
        columns = ["sample_id", "split", "group", *media_columns, *(s.name for s in labels)]
        return Manifest(config.name, table[columns].reset_index(drop=True), labels, modalities, protocol)
