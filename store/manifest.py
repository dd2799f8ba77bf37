"""Manifests: one Parquet table per dataset version, the row order every feature array follows.

Columns: ``sample_id`` (unique, stable), ``split`` (train/val/test), ``group`` (nullable, e.g. the
actor, for group-disjoint splits), one column per label, and optionally one column per modality
holding its media path or text. The dataset's **named modalities** (any number, each with a kind:
audio, video, image, text or features, and its media column), the label metadata (kind, owner) and
the split protocol are saved in the Parquet schema metadata, so a manifest file is self-describing.
A manifest file that cannot be read back as one is damage (store/damage.py), never a value.

A label's owner is ``shared`` (every modality carries it), ``joint`` (it needs the modalities
together; no component owns it) or the name of the one modality that should carry it; the
manifest refuses any other owner.

A label may declare its **scale** (``LabelSpec.scale``), the convention its values follow, which
says how it is scored (the mapping is the evaluator's, ``evaluate/metrics.py``):

- ``""`` (the default): nothing beyond its kind;
- ``"binary"``: a categorical label of two classes (e.g. UR-FUNNY's humor, MUStARD's sarcasm);
- ``"sentiment"``: a continuous sentiment intensity on [−3, 3], negative to positive, as CMU-MOSI
  and CMU-MOSEI annotate it (the multimodal sentiment analysis convention).

The manifest refuses a scale that does not fit the label's kind or values. An undeclared scale is
left out of the manifest's metadata and version, so manifests without one keep their versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmpipe.store.damage import Damaged, DamagedError, unreadable
from mmpipe.store.errors import UserError
from mmpipe.store.writes import as_plain_file, writing

SPLITS = ("train", "val", "test")
LabelKind = Literal["categorical", "continuous"]
_KINDS = ("categorical", "continuous")
# declared label scales: name -> the kind it needs (see the module docstring)
LABEL_SCALES = {"": None, "binary": "categorical", "sentiment": "continuous"}
SENTIMENT_RANGE = (-3.0, 3.0)
OWNERS_BESIDE_MODALITIES = ("shared", "joint")
MODALITY_KINDS = ("audio", "video", "image", "text", "features")
_MODALITY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_METADATA_KEY = b"mmpipe"


@dataclass(frozen=True)
class Modality:
    """One named modality of a dataset: what it is, and the column holding its media path or text
    (None when its features are given, as for simulations and ingested features)."""

    name: str
    kind: str
    column: str | None = None

    def __post_init__(self) -> None:
        if not _MODALITY_NAME.match(self.name) or self.name in OWNERS_BESIDE_MODALITIES or self.name == "s":
            raise ValueError(f"modality name {self.name!r} must be lower-case letters, digits and _, starting "
                             f"with a letter, and not {', '.join(OWNERS_BESIDE_MODALITIES)} or s")
        if self.kind not in MODALITY_KINDS:
            raise ValueError(f"modality {self.name!r}: kind must be one of {MODALITY_KINDS}, not {self.kind!r}")


@dataclass(frozen=True)
class LabelSpec:
    """A label column: its kind and the component that *should* carry it."""

    name: str
    kind: LabelKind
    owner: str  # shared, joint, or a modality name (checked against the manifest's modalities)
    description: str = ""
    scale: str = ""  # "", "binary" or "sentiment" (module docstring); checked against the kind and values

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"label {self.name!r}: kind must be one of {_KINDS}, not {self.kind!r}")
        if self.scale not in LABEL_SCALES:
            raise ValueError(f"label {self.name!r}: scale must be one of {', '.join(map(repr, LABEL_SCALES))}, "
                             f"not {self.scale!r}")
        needs = LABEL_SCALES[self.scale]
        if needs is not None and self.kind != needs:
            raise ValueError(f"label {self.name!r}: a {self.scale} label must be {needs}, not {self.kind}")

    def record(self) -> dict:
        """The label as saved in the manifest's metadata (an undeclared scale is left out)."""
        fields = asdict(self)
        if not self.scale:
            del fields["scale"]
        return fields


@dataclass(frozen=True)
class Manifest:
    dataset: str
    table: pd.DataFrame = field(repr=False)
    labels: tuple[LabelSpec, ...]
    modalities: tuple[Modality, ...] = ()
    # split protocol, e.g. "group-disjoint (actor), seed 0" — reported beside every score
    split_protocol: str = ""

    def __post_init__(self) -> None:
        table = self.table
        for column in ("sample_id", "split", "group"):
            if column not in table.columns:
                raise ValueError(f"manifest for {self.dataset}: missing column {column!r}")
        if table["sample_id"].duplicated().any():
            dupes = table.loc[table["sample_id"].duplicated(), "sample_id"].head(3).tolist()
            raise ValueError(f"manifest for {self.dataset}: duplicate sample_id values, e.g. {dupes}")
        bad = set(table["split"].unique()) - set(SPLITS)
        if bad:
            raise ValueError(f"manifest for {self.dataset}: unknown split values {sorted(bad)}")
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"manifest for {self.dataset}: modality names repeat: {names}")
        owners = (*OWNERS_BESIDE_MODALITIES, *names)
        for label in self.labels:
            if label.name not in table.columns:
                raise ValueError(f"manifest for {self.dataset}: label column {label.name!r} missing")
            if label.owner not in owners:
                raise ValueError(f"manifest for {self.dataset}: label {label.name!r} has owner {label.owner!r}; "
                                 f"valid: {', '.join(owners)}")
            _check_scale(self.dataset, label, table[label.name])
        for modality in self.modalities:
            if modality.column is not None and modality.column not in table.columns:
                raise ValueError(f"manifest for {self.dataset}: modality {modality.name} column "
                                 f"{modality.column!r} missing")

    def __len__(self) -> int:
        return len(self.table)

    def label(self, name: str) -> LabelSpec:
        for spec in self.labels:
            if spec.name == name:
                return spec
        valid = ", ".join(s.name for s in self.labels)
        raise UserError(f"dataset {self.dataset} has no label {name!r}; valid: {valid}")

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def modality(self, name: str) -> Modality:
        for modality in self.modalities:
            if modality.name == name:
                return modality
        valid = ", ".join(self.modality_names) or "none"
        raise UserError(f"dataset {self.dataset} has no modality {name!r}; valid: {valid}")

    def split_mask(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return (self.table["split"] == split).to_numpy(copy=True)

    def metadata(self) -> dict:
        return {
            "dataset": self.dataset,
            "labels": [label.record() for label in self.labels],
            "modalities": [asdict(m) for m in self.modalities],
            "split_protocol": self.split_protocol,
        }

    def version(self) -> str:
        """Content hash of the manifest: rows, columns, dtypes, modalities, the split protocol and
        each label's name, kind, owner and declared scale (if any: a label without one hashes as
        before scales existed). A label's description is prose, not data: rewording it changes no
        version, hence no fingerprint downstream."""
        meta = self.metadata()
        meta["labels"] = [{k: v for k, v in label.items() if k != "description"} for label in meta["labels"]]
        digest = hashlib.sha256()
        digest.update(json.dumps(meta, sort_keys=True).encode())
        digest.update(json.dumps([[c, str(t)] for c, t in self.table.dtypes.items()]).encode())
        rows = pd.util.hash_pandas_object(self.table, index=False).to_numpy()
        digest.update(rows.tobytes())
        return digest.hexdigest()[:16]


def _check_scale(dataset: str, label: LabelSpec, column: pd.Series) -> None:
    """A binary label holds at most two distinct values; a sentiment label only finite values in
    `SENTIMENT_RANGE` (missing values are allowed for both)."""
    present = column.dropna()
    if label.scale == "binary" and present.nunique() > 2:
        raise ValueError(f"manifest for {dataset}: binary label {label.name!r} has {present.nunique()} distinct "
                         f"values, e.g. {sorted(map(str, present.unique()))[:3]}")
    if label.scale == "sentiment":
        values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64)
        low, high = SENTIMENT_RANGE
        bad = ~(np.isfinite(values) & (values >= low) & (values <= high))
        if bad.any():
            raise ValueError(f"manifest for {dataset}: sentiment label {label.name!r} has {int(bad.sum())} values "
                             f"outside [{low:g}, {high:g}], e.g. {present.to_numpy()[bad][0]!r}")


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write atomically: a reader never sees a half-written Parquet file, and a failed write
    (a full or read-only disk: one line) leaves no temporary file."""
    table = pa.Table.from_pandas(manifest.table.reset_index(drop=True), preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[_METADATA_KEY] = json.dumps(manifest.metadata()).encode()
    table = table.replace_schema_metadata(schema_meta)
    with writing(f"the manifest of {manifest.dataset}", path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            as_plain_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_manifest(path: Path) -> Manifest:
    """The manifest in ``path``. A file that is missing, not Parquet, or Parquet without a valid
    manifest's metadata raises `DamagedError` naming it; one that may not be read says so."""

    def damaged(reason: str) -> DamagedError:
        return DamagedError(Damaged(path, "manifest", reason))

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise damaged("the file is missing") from None
    except PermissionError as error:
        raise unreadable(path, error) from None
    except (OSError, pa.ArrowException, ValueError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:120]
        raise damaged(f"not a readable Parquet file ({first})") from None
    raw = (table.schema.metadata or {}).get(_METADATA_KEY)
    if raw is None:
        raise damaged("no mmpipe manifest metadata in its Parquet schema")
    try:
        meta = json.loads(raw)
        return Manifest(
            dataset=meta["dataset"],
            table=table.to_pandas(),
            labels=tuple(LabelSpec(**label) for label in meta["labels"]),
            modalities=tuple(Modality(**m) for m in meta["modalities"]),
            split_protocol=meta.get("split_protocol", ""),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # valid Parquet, wrong content
        raise damaged(f"its mmpipe metadata or columns are not a manifest's ({type(error).__name__}: "
                      f"{str(error)[:120]})") from None
