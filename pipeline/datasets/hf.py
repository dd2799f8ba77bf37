"""hf: a Hugging Face ``datasets`` dataset on local disk, read where it lies (no copy of the media).

``path`` is either a saved ``Dataset``/``DatasetDict`` (``save_to_disk``; read with
``datasets.load_from_disk``) or, with ``loader=imagefolder`` / ``loader=audiofolder``, a folder
that ``datasets.load_dataset(loader, data_dir=path)`` reads (datasets 4 and later build an
audiofolder only with torchcodec installed, which needs FFmpeg's shared libraries; without it
the refusal says so and points to the `folder` dataset; a saved dataset's Audio columns need no
torchcodec, as mmpipe reads their bytes itself). ``m1``, ``m2`` (and ``m3``) name the
columns of the modalities m1, m2, m3; each column's ``datasets`` feature gives its kind: ``Image``
→ image, ``Audio`` → audio, a string ``Value`` → text (other features are refused). ``labels``
names the label columns: ``col`` (kind from its feature: ``ClassLabel`` → categorical, stored as
the class names; a float ``Value`` → continuous; any other ``Value`` → categorical; owner
``joint``, the neutral choice `folder` makes too) or ``col:kind:owner`` (owner shared, joint, m1,
m2 or m3). ``group`` names an optional column (e.g. speaker) kept within one split; ``id`` an
optional column of unique sample ids (default ``<split>/<row>``).

Splits: a DatasetDict's ``train``, ``validation`` (or ``val``, ``valid``, ``dev``) and ``test``
are train/val/test as given. A DatasetDict of ``train`` and ``test`` gets val carved out of train,
and a single Dataset (or a DatasetDict of ``train`` only, e.g. an imagefolder without split
folders) a seeded random train/val/test split (``train_frac``, ``val_frac``, ``seed``; per group
with ``group``); the manifest's split protocol says which.

Media: an ``Image``/``Audio`` cell that refers to a local file (an imagefolder's rows) is stored
as that path, relative to ``path`` when under it, and decoded like any mmpipe media file; a cell
holding bytes (every cell of a saved dataset: ``save_to_disk`` embeds the files) is stored as
``arrow://<split>/<row>@<fingerprint>`` (the dataset's own ``datasets`` fingerprint, so changed
data is a new manifest version) and read from the Arrow files by the decoding worker
(`mmpipe.pipeline.embedded`). An empty cell is masked, never decoded.

``name`` (``--name``) is the dataset's name in the store (default ``hf``), so two HF datasets
are kept apart: features are ``<name>.<modality>.<encoder>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.base import DATASETS, Dataset, check_custom_name
from mmpipe.pipeline.datasets.splits import check_fractions, group_split, random_split
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import OWNERS_BESIDE_MODALITIES, LabelSpec, Manifest, Modality
from mmpipe.store.ranges import FRACTION, SEED, SHARE, Checked

MODALITY_FIELDS = ("m1", "m2", "m3")
SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "valid": "val", "dev": "val", "test": "test"}
EMBEDDED = "arrow://"  # a manifest media cell read from the saved dataset's Arrow files
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes at the top of a Dataset(Dict)


@dataclass(frozen=True)
class HFConfig(Checked):
    path: str = ""  # a saved Dataset/DatasetDict directory, or an image/audio folder (with loader)
    loader: Literal["auto", "saved", "imagefolder", "audiofolder"] = "auto"  # auto: saved if path is one
    name: str = "hf"  # the dataset's name in the store
    m1: str = ""  # the column of modality m1
    m2: str = ""
    m3: str = ""
    labels: tuple[str, ...] = ()  # col or col:kind:owner
    group: str = ""  # a column kept within one split
    id: str = ""  # a column of unique sample ids; empty: <split>/<row>
    seed: Annotated[int, SEED] = 0
    train_frac: Annotated[float, FRACTION] = 0.7  # train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15

    def check(self) -> None:
        check_fractions(self.train_frac, self.val_frac)
        check_custom_name(self.name, "hf")


@dataclass(frozen=True)
class _Part:
    """One split of the source: its ``datasets`` split name (None: a single Dataset), the rows as
    an Arrow table, and its ``datasets`` fingerprint."""

    split: str | None
    table: Any  # pyarrow.Table, zero-copy over the memory-mapped Arrow files
    fingerprint: str


def _load(config: HFConfig) -> tuple[Any, list[_Part], str]:
    """(features, parts in order, the loader used)."""
    if not config.path:
        raise UserError("hf: set path=DIR, a saved Dataset/DatasetDict or, with loader=imagefolder|audiofolder, "
                        "a folder of media")
    root = Path(config.path).expanduser()
    if not root.is_dir():
        raise UserError(f"hf: {root} is not a directory")
    loader = config.loader
    if loader == "auto":
        if not any((root / marker).is_file() for marker in SAVED_MARKERS):
            raise UserError(f"hf: {root} is not a saved dataset (no {' or '.join(SAVED_MARKERS)}); for a folder of "
                            "images or audio set loader=imagefolder or loader=audiofolder")
        loader = "saved"
    import datasets  # slow to import: only when an hf dataset is built

    try:
        if loader == "saved":
            loaded = datasets.load_from_disk(str(root))
        else:
            loaded = datasets.load_dataset(loader, data_dir=str(root))
    except Exception as error:  # datasets raises many types for a folder it cannot read
        if _needs_torchcodec(error):
            raise UserError(f"hf: datasets {datasets.__version__} reads an {loader} only through torchcodec (pip "
                            "install torchcodec; it needs FFmpeg's shared libraries); without it, list the files in "
                            "a table and use `mmpipe extract folder`") from None
        raise UserError(f"hf: cannot read {root} as {loader}: {type(error).__name__}: {error}".splitlines()[0]) from None
    if isinstance(loaded, datasets.DatasetDict):
        unknown = [s for s in loaded if s not in SPLIT_NAMES]
        if unknown:
            raise UserError(f"hf: {root} has split(s) {', '.join(unknown)}; mmpipe reads "
                            f"{', '.join(SPLIT_NAMES)} (train/val/test)")
        given = [SPLIT_NAMES[s] for s in loaded]
        if len(set(given)) != len(given):
            raise UserError(f"hf: {root} has several validation splits ({', '.join(loaded)})")
        if "train" not in given:
            raise UserError(f"hf: {root} has no train split (splits: {', '.join(loaded)})")
        parts = [_Part(s, d.with_format("arrow")[:], d._fingerprint) for s, d in loaded.items()]
        features = next(iter(loaded.values())).features
    else:
        parts = [_Part(None, loaded.with_format("arrow")[:], loaded._fingerprint)]
        features = loaded.features
    if sum(p.table.num_rows for p in parts) == 0:
        raise UserError(f"hf: {root} holds no rows")
    return features, parts, loader


def _needs_torchcodec(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is datasets asking for torchcodec, which it needs to
    encode or decode any ``Audio`` value (datasets 4 and later)."""
    while error is not None:
        if isinstance(error, ImportError) and "torchcodec" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _kind(features: Any, column: str, where: str) -> str:
    import datasets

    if column not in features:
        raise UserError(f"hf: no column {column!r} for {where}; columns: {', '.join(features)}")
    feature = features[column]
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.Audio):
        return "audio"
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return "text"
    raise UserError(f"hf: column {column!r} ({where}) is {type(feature).__name__}"
                    f"{'(' + feature.dtype + ')' if isinstance(feature, datasets.Value) else ''}; a modality "
                    "column must be Image, Audio or a string Value")


def _label_specs(features: Any, entries: tuple[str, ...], owners: tuple[str, ...],
                 taken: set[str]) -> tuple[LabelSpec, ...]:
    import datasets

    specs = []
    for entry in entries:
        parts = entry.split(":")
        if len(parts) not in (1, 3) or not all(parts):
            raise UserError(f"hf: label {entry!r} must be col or col:kind:owner (e.g. emotion:categorical:shared)")
        column = parts[0]
        if column not in features or column in taken:
            raise UserError(f"hf: label {column!r} is not a label column; columns: {', '.join(features)}")
        taken.add(column)
        if len(parts) == 3:
            kind, owner = parts[1], parts[2]
            if owner not in owners:
                raise UserError(f"hf: label {column!r} has owner {owner!r}; valid: {', '.join(owners)}")
            description = ""
        else:
            feature = features[column]
            if not isinstance(feature, (datasets.ClassLabel, datasets.Value)):
                raise UserError(f"hf: label {column!r} is {type(feature).__name__}; a label is a ClassLabel or Value")
            floats = isinstance(feature, datasets.Value) and feature.dtype.startswith("float")
            kind, owner = ("continuous" if floats else "categorical"), "joint"
            description = "undeclared label: kind from its feature, owner joint"
        try:
            specs.append(LabelSpec(column, kind, owner, description))  # type: ignore[arg-type]
        except ValueError as error:
            raise UserError(f"hf: {error}") from None
    return tuple(specs)


def _label_values(features: Any, column: str, parts: list[_Part]) -> list[Any]:
    import datasets

    values = [v for p in parts for v in p.table.column(column).to_pylist()]
    feature = features[column]
    if isinstance(feature, datasets.ClassLabel):  # the class names, not their codes
        return [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    return values


def _media_cells(column: str, kind: str, parts: list[_Part], root: Path) -> list[str]:
    """The manifest cell of each row: text as it is; a local file's path (relative to ``root``
    when under it); an embedded cell's ``arrow://`` reference; "" for an empty cell."""
    import pyarrow.compute as pc

    cells: list[str] = []
    resolved = root.resolve()
    for part in parts:
        column_data = part.table.column(column)
        if kind == "text":
            cells.extend(v if isinstance(v, str) else "" for v in column_data.to_pylist())
            continue
        paths = pc.struct_field(column_data, "path").to_pylist()
        has_bytes = pc.is_valid(pc.struct_field(column_data, "bytes")).to_pylist()
        present = pc.is_valid(column_data).to_pylist()
        split = part.split if part.split is not None else ""
        for row, (path, embedded, there) in enumerate(zip(paths, has_bytes, present, strict=True)):
            if not there:
                cells.append("")
            elif embedded:
                cells.append(f"{EMBEDDED}{split}/{row}@{part.fingerprint}")
            elif path and Path(path).is_file():
                file = Path(path).resolve()
                cells.append(str(file.relative_to(resolved)) if file.is_relative_to(resolved) else str(file))
            else:
                cells.append(path or "")  # a path that is no local file: the decoder names it when it fails
    return cells


def _splits(parts: list[_Part], groups: np.ndarray | None, config: HFConfig) -> tuple[np.ndarray, str]:
    given = [SPLIT_NAMES[p.split] if p.split is not None else None for p in parts]
    sizes = [p.table.num_rows for p in parts]
    if set(given) == {"train", "val", "test"}:
        return np.concatenate([[s] * n for s, n in zip(given, sizes, strict=True)]).astype(object), \
            "as given by the DatasetDict's splits"
    seeded = (f"{'group-disjoint ' if groups is not None else ''}random "
              f"{config.train_frac:.0%}/{config.val_frac:.0%}/rest, seed {config.seed}")

    def draw(n: int, group: np.ndarray | None, train: float, val: float) -> np.ndarray:
        if group is not None:
            return group_split(group, train, val, config.seed)
        return random_split(n, train, val, config.seed)

    if set(given) == {"train", "test"}:  # val carved out of train, in the train:val proportion asked for
        share = config.val_frac / (config.train_frac + config.val_frac)
        out, start = [], 0
        for split, n in zip(given, sizes, strict=True):
            if split == "train":
                group = groups[start:start + n] if groups is not None else None
                drawn = draw(n, group, 1 - share, 0.0)  # train and a rest, which becomes val
                out.append(np.where(drawn == "test", "val", drawn).astype(object))
            else:
                out.append(np.array(["test"] * n, dtype=object))
            start += n
        return np.concatenate(out), (f"test as given; val {share:.0%} of the given train "
                                     f"({'group-disjoint ' if groups is not None else ''}random, seed {config.seed})")
    if given in ([None], ["train"]):
        return draw(sum(sizes), groups, config.train_frac, config.val_frac).astype(object), seeded
    raise UserError(f"hf: splits {', '.join(p.split or '' for p in parts)}: mmpipe needs train, validation and test, "
                    "train and test (val is carved from train), or one split (split at random)")


@DATASETS.register("hf")
class HF(Dataset):
    name = "hf"
    description = ("a Hugging Face dataset on disk (load_from_disk, or an image/audio folder): Image, Audio and "
                   "text columns as modalities m1..m3, label columns, its splits; --name names it")
    Config = HFConfig
    # the defaults; the config's columns decide the kinds
    modalities = (Modality("m1", "image"), Modality("m2", "text"))

    def manifest(self, config: HFConfig) -> Manifest:
        features, parts, loader = _load(config)
        root = Path(config.path).expanduser()
        chosen = [(field, getattr(config, field)) for field in MODALITY_FIELDS if getattr(config, field)]
        if not chosen:
            raise UserError(f"hf: name the modality columns, e.g. --set m1=image --set m2=text; columns: "
                            f"{', '.join(features)}")
        columns = [column for _, column in chosen]
        if len(set(columns)) != len(columns):
            raise UserError(f"hf: one column serves two modalities ({', '.join(f'{m}={c}' for m, c in chosen)})")
        modalities = tuple(Modality(field, _kind(features, column, field), column) for field, column in chosen)
        owners = (*OWNERS_BESIDE_MODALITIES, *(m.name for m in modalities))
        reserved = {config.group, config.id} - {""}
        labels = _label_specs(features, config.labels, owners, set(columns) | reserved)
        table = pd.DataFrame({m.column: _media_cells(m.column, m.kind, parts, root) for m in modalities})
        for spec in labels:
            table[spec.name] = _label_values(features, spec.name, parts)
        groups = None
        if config.group:
            _kind_of_plain(features, config.group, "group")
            groups = np.array([str(v) for p in parts for v in p.table.column(config.group).to_pylist()], dtype=object)
        if config.id:
            _kind_of_plain(features, config.id, "id")
            ids = [str(v) for p in parts for v in p.table.column(config.id).to_pylist()]
            if len(set(ids)) != len(ids):
                raise UserError(f"hf: column {config.id!r} (id) has duplicate values")
        else:
            ids = [f"{p.split + '/' if p.split is not None else ''}{row}" for p in parts for row in range(p.table.num_rows)]
        table.insert(0, "sample_id", ids)
        splits, protocol = _splits(parts, groups, config)
        table.insert(1, "split", splits)
        # dtypes as a manifest file reads back (the version hashes them): strings, or all-None objects
        table.insert(2, "group", pd.Series(groups).astype(str) if groups is not None
                     else pd.Series([None] * len(table), dtype="object"))
        source = f"{loader} {root.name}"
        return Manifest(config.name, table, labels, modalities, f"{protocol} ({source})")

    def media_root(self, config: HFConfig, modality: str) -> Path | None:
        return Path(config.path).expanduser() if config.path else None

    def media_sources(self, config: HFConfig, manifest: Manifest, modality: str) -> list[Any] | None:
        from mmpipe.pipeline.embedded import EmbeddedMedia  # torch and the decoders: only when extracting

        chosen = manifest.modality(modality)
        if chosen.kind == "text":
            return None
        root = Path(config.path).expanduser()
        location = str(root.resolve())
        sources: list[Any] = []
        for cell in manifest.table[chosen.column].tolist():
            if cell.startswith(EMBEDDED):
                split, _, rest = cell[len(EMBEDDED):].partition("/")
                sources.append(EmbeddedMedia(location, split or None, chosen.column, int(rest.partition("@")[0])))
            else:
                sources.append(str(root / cell) if cell and not Path(cell).is_absolute() else cell)
        return sources

    def unusable_media(self, manifest: Manifest, modality: str) -> dict[int, str]:
        column = manifest.modality(modality).column
        return {row: f"no {column} in this row" for row, cell in enumerate(manifest.table[column].tolist())
                if not cell}


def _kind_of_plain(features: Any, column: str, what: str) -> None:
    import datasets

    if column not in features:
        raise UserError(f"hf: no column {column!r} ({what}); columns: {', '.join(features)}")
    if not isinstance(features[column], (datasets.Value, datasets.ClassLabel)):
        raise UserError(f"hf: column {column!r} ({what}) is {type(features[column]).__name__}, not a plain value")
