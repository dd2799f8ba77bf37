"""Affect benchmarks distributed as pre-extracted feature pickles: the shared reading of the three
public formats, and the base class of the datasets read from them (mosi, mosei, urfunny, mustard).

Formats (every file is a pickled ``{"train", "valid", "test"}`` dict of per-split dicts)::

    multibench  MultiBench's mosi_raw.pkl, mosei_raw.pkl, humor.pkl (UR-FUNNY), sarcasm.pkl (MUStARD):
                keys vision, audio, text ([N, T, D] each), labels, id; every modality padded at
                the FRONT (zero steps first), text = GloVe of the first words
    mult        MulT's mosi_data.pkl, mosei_senti_data.pkl: the same keys, labels [N, 1, 1], id
                [N, 3] (video id, start, end); read with MultiBench's front-padding rule
    mmsa        MMSA's <MOSI|MOSEI>/Processed/aligned_50.pkl and unaligned_50.pkl: keys raw_text,
                text (BERT features [N, 50, 768]), text_bert ([N, 3, 50]: token ids, attention
                mask, segment ids), audio, vision, audio_lengths, vision_lengths, id
                ("video$_$clip"), regression_labels (and others ignored); padded at the END

Shapes are read from the data, never from a table: T and D of each modality are what the file
holds, and must agree across the splits. Labels may be ``(N,)``, ``(N, 1)`` or ``(N, 1, 1)``.

True lengths follow the source's padding convention, and every feature entry says which rule it
used (`LengthRule`):

- ``front-zeros``: leading all-zero steps are padding (MultiBench, MulT); the valid steps are
  moved to the front, since the store pads at the end;
- ``end-lengths``: the file's ``<modality>_lengths`` (MMSA unaligned audio and vision);
- ``end-mask``: the attention mask in ``text_bert`` (MMSA text: BERT outputs at padded positions
  are not zero, so zeros cannot say where a text ends);
- ``end-zeros``: trailing all-zero steps are padding (MMSA aligned audio and vision).

A row with no valid step (e.g. MultiBench's rows whose text is all zeros) is stored with length 0
and masked (valid=False), and listed among the entry's failures, never fed to a fit as zeros.

Reading never loads the feature arrays: `open_pickle` leaves each one in the file (a `FileArray`)
and the ingest workflow (`mmpipe.pipeline.ingest`) copies rows chunk by chunk. Everything that can
be wrong with a file is checked here first, before anything is stored: a missing split or key, a
modality whose (T, D) differs between splits, labels, ids or features of different lengths, labels
of another shape or outside the label's range, lengths outside 0..T. Each is one `UserError` line
naming the file, the split and the key.

Provenance (`SourceFile`): format, file name, size, sha256, and whether the sha256 is the one the
upstream publishes for that file (MMSA publishes them; MultiBench and MulT do not: ``unknown``).
The manifest's split protocol names the format, the file and its sha256, so two different copies
of a file are two manifest versions, never one silently mixed.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.base import Dataset
from mmpipe.pipeline.datasets.pickles import Array, FileArray, open_pickle
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SENTIMENT_RANGE, LabelSpec, Manifest, Modality
from mmpipe.store.ranges import MIN_SPLIT_ROWS, Checked

# the file's split names -> the manifest's, in manifest row order
FILE_SPLITS = {"train": "train", "valid": "val", "test": "test"}
MODALITIES = ("text", "audio", "vision")
MODALITY_KINDS = {"text": "text", "audio": "audio", "vision": "video"}
RAW_TEXT = "raw_text"  # the manifest column holding the file's raw text, when it has one
_HASH_BLOCK = 8 << 20


@dataclass(frozen=True)
class SourceFormat:
    """Where a format keeps each piece, and how it pads."""

    name: str
    title: str  # as its users call it
    labels: str  # the key of the label array
    padding: Literal["front", "end"]
    raw_text: str | None = None  # key of the raw text, if the format has it
    lengths: dict[str, str] = field(default_factory=dict)  # modality -> key of its lengths (unaligned only)
    mask: dict[str, str] = field(default_factory=dict)  # modality -> key of a [N, 3, T] ids/mask/segments array
    ids: str = "id"

    def required(self) -> tuple[str, ...]:
        return (*MODALITIES, self.labels, self.ids)

    def keys(self) -> set[str]:
        return {*self.required(), *([self.raw_text] if self.raw_text else []), *self.lengths.values(),
                *self.mask.values()}


SOURCE_FORMATS = {
    "multibench": SourceFormat("multibench", "MultiBench", "labels", "front"),
    "mult": SourceFormat("mult", "MulT", "labels", "front"),
    "mmsa": SourceFormat("mmsa", "MMSA", "regression_labels", "end", raw_text="raw_text",
                         lengths={"audio": "audio_lengths", "vision": "vision_lengths"}, mask={"text": "text_bert"}),
}


@dataclass(frozen=True)
class PublicFile:
    """A file as its upstream distributes it: path relative to the download's root, its format,
    and the sha256 the upstream publishes for it (None: it publishes none)."""

    path: str
    format: str
    sha256: str | None = None

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def places(self, data_dir: Path) -> list[Path]:
        """Where the file may lie under ``data_dir``: at its public path, or deeper in it when
        ``data_dir`` already is one of its folders (``--data-dir MOSI`` or ``MOSI/Processed``)."""
        parts = self.path.split("/")
        found = [data_dir.joinpath(*parts)]
        tail = [p.lower() for p in data_dir.resolve().parts]
        for k in range(1, len(parts)):
            if [p.lower() for p in parts[:k]] == tail[-k:]:
                found.append(data_dir.joinpath(*parts[k:]))
        return list(dict.fromkeys(found))


@dataclass(frozen=True)
class AffectConfig(Checked):
    """Where the file is: found by its public name under ``data_dir``, or ``file`` (a path,
    relative to ``data_dir`` when that is given); ``format`` auto: from the file's name, else from
    its keys."""

    data_dir: str = ""
    file: str = ""
    format: Literal["auto", "multibench", "mult", "mmsa"] = "auto"


@dataclass(frozen=True)
class SourceFile:
    """Provenance of an ingested file."""

    path: Path
    name: str  # the public name it matched (e.g. MOSI/Processed/aligned_50.pkl), else its file name
    format: str
    size: int
    sha256: str
    upstream: Literal["match", "mismatch", "unknown"]  # against the checksum the upstream publishes
    upstream_sha256: str | None = None

    @property
    def title(self) -> str:
        return SOURCE_FORMATS[self.format].title

    def record(self) -> dict[str, Any]:
        return {"format": self.format, "file": self.name, "size": self.size, "sha256": self.sha256,
                "upstream_checksum": self.upstream, "upstream_sha256": self.upstream_sha256}

    def describe(self) -> str:
        check = {"match": f"matches {self.title}'s published sha256",
                 "mismatch": f"DOES NOT match {self.title}'s published sha256 {self.upstream_sha256}",
                 "unknown": f"{self.title} publishes no checksum for it: unknown"}[self.upstream]
        return f"{self.title} {self.name}, {self.size:,} bytes, sha256 {self.sha256} ({check})"


@dataclass(frozen=True)
class LengthRule:
    """How the true lengths of one modality are found (recorded in its entry)."""

    name: Literal["front-zeros", "end-zeros", "end-lengths", "end-mask"]
    key: str | None = None  # the file's key for end-lengths / end-mask

    @property
    def front(self) -> bool:
        return self.name == "front-zeros"

    def describe(self) -> str:
        return {"front-zeros": "front padding: leading all-zero steps are padding; the valid steps are stored "
                               "first (end-padded)",
                "end-zeros": "end padding: trailing all-zero steps are padding",
                "end-lengths": f"end padding: lengths from the file's {self.key!r}",
                "end-mask": f"end padding: lengths from the attention mask in the file's {self.key!r} "
                            "(row 1 of [N, 3, T])"}[self.name]


@dataclass(frozen=True)
class ModalityData:
    """One modality of a source file: its arrays per manifest split, left in the file."""

    modality: str
    feature: str  # the feature part of the entry name, e.g. glove
    key: str  # the file's key
    arrays: dict[str, Array]  # manifest split -> [n, T, D]
    steps: int
    dim: int
    dtype: np.dtype  # as stored in the file
    rule: LengthRule
    lengths: dict[str, np.ndarray] | None = None  # manifest split -> (n,) lengths, for end-lengths / end-mask


@dataclass(frozen=True)
class AffectSource:
    """A validated source file: the manifest table and, per modality, where its rows are."""

    dataset: str
    file: SourceFile
    table: pd.DataFrame  # sample_id, split, group, labels (and raw_text), in manifest row order
    labels: tuple[LabelSpec, ...]
    modalities: tuple[ModalityData, ...]
    aligned: bool  # every modality has the same T
    renamed_ids: int = 0  # repeated ids made unique with a #k suffix

    @functools.cached_property
    def split_sizes(self) -> dict[str, int]:
        counts = self.table["split"].value_counts()
        return {split: int(counts.get(split, 0)) for split in FILE_SPLITS.values()}

    @functools.cached_property
    def split_rows(self) -> tuple[tuple[str, int, int], ...]:
        """(manifest split, first row, end row) in manifest row order."""
        rows, start = [], 0
        for split, n in self.split_sizes.items():
            rows.append((split, start, start + n))
            start += n
        return tuple(rows)

    def modality(self, name: str) -> ModalityData:
        return next(m for m in self.modalities if m.modality == name)

    def manifest(self) -> Manifest:
        modalities = tuple(Modality(m, MODALITY_KINDS[m]) for m in MODALITIES)  # no media: features given
        protocol = (f"official {self.file.title} train/valid/test folds of {self.file.name} "
                    f"(sha256 {self.file.sha256[:12]})")
        try:
            return Manifest(self.dataset, self.table, self.labels, modalities, protocol)
        except ValueError as error:  # the checks above should have caught it; say which file
            raise UserError(f"{self.file.path}: {error}") from None


# upstream checksum -> (dataset, public path), to recognise a file given as the wrong dataset
PUBLISHED: dict[str, tuple[str, str]] = {}


class AffectDataset(Dataset):
    """A dataset ingested from one of its public feature pickles (`mmpipe ingest`).

    A subclass declares its public files (`PublicFile`: path, format, published sha256), the
    feature name of each modality per format, and its label (`label_spec`, read by `_labels`)."""

    Config = AffectConfig
    modalities = tuple(Modality(m, MODALITY_KINDS[m]) for m in MODALITIES)
    files: ClassVar[tuple[PublicFile, ...]]
    features: ClassVar[dict[str, dict[str, str]]]  # format -> modality -> feature name
    label_spec: ClassVar[LabelSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for public in getattr(cls, "files", ()):
            if public.sha256:
                PUBLISHED[public.sha256] = (cls.name, public.path)

    # -- the Dataset contract -------------------------------------------------------------------
    def manifest(self, config: AffectConfig) -> Manifest:
        return self.read(config).manifest()

    def media_root(self, config: Any, modality: str) -> Path | None:
        return None  # no media: the features are given

    # -- finding and reading the file --------------------------------------------------------------
    def locate(self, config: AffectConfig) -> tuple[Path, PublicFile | None]:
        """The file to read, and the public file it is (by name), if any."""
        data_dir = Path(config.data_dir).expanduser() if config.data_dir else None
        if data_dir is not None and not data_dir.is_dir():
            problem = "does not exist" if not data_dir.exists() else "is a file, not a directory"
            raise UserError(f"{self.name}: --data-dir {data_dir} {problem}")
        if config.file:
            path = Path(config.file).expanduser()
            if not path.is_absolute() and data_dir is not None:
                path = data_dir / path
            if not path.is_file():
                problem = "is a directory" if path.is_dir() else "does not exist"
                raise UserError(f"{self.name}: file {path} {problem}; give the feature pickle itself")
            return path, next((f for f in self.files if f.basename == path.name), None)
        if data_dir is None:
            raise UserError(f"{self.name}: give --data-dir DIR (holding {self._names()}) or --set file=PATH")
        found = [(place, public) for public in self.files for place in public.places(data_dir) if place.is_file()]
        if not found:
            raise UserError(f"{self.name}: none of {self._names()} in {data_dir}; give the file with --set file=PATH")
        if len(found) > 1:
            listed = ", ".join(f"{p} ({public.format})" for p, public in found)
            raise UserError(f"{self.name}: several feature files in {data_dir}: {listed}; choose one with "
                            "--set file=PATH")
        return found[0]

    def _names(self) -> str:
        return ", ".join(f.path for f in self.files)

    def read(self, config: AffectConfig, sha256: str | None = None) -> AffectSource:
        """Locate, identify and validate the file; its feature arrays stay in the file.
        ``sha256`` is the file's digest when the caller already knows it (a memo)."""
        path, public = self.locate(config)
        digest = sha256 or file_sha256(path)
        self._check_identity(path, digest)
        tree = open_pickle(path, (tuple(FILE_SPLITS), _all_keys()))
        fmt = self._format(path, config, public, tree)
        upstream = "unknown" if public is None or public.sha256 is None or public.format != fmt else \
            ("match" if public.sha256 == digest else "mismatch")
        source = SourceFile(path, public.path if public is not None else path.name, fmt, path.stat().st_size, digest,
                            upstream, public.sha256 if public is not None and upstream != "unknown" else None)
        return _validate(self, source, tree)

    def _check_identity(self, path: Path, digest: str) -> None:
        """Refuse a file whose sha256 is the one another dataset's upstream publishes."""
        owner = PUBLISHED.get(digest)
        if owner is not None and owner[0] != self.name:
            raise UserError(f"{path} is {owner[0]}'s {owner[1]} (its sha256 is the one the upstream publishes for "
                            f"that file), not a {self.name} file; ingest it as {owner[0]}")

    def _format(self, path: Path, config: AffectConfig, public: PublicFile | None, tree: Any) -> str:
        offered = sorted({f.format for f in self.files})
        if config.format != "auto":
            if config.format not in offered:
                raise UserError(f"{self.name} is not distributed in the {config.format} format; its formats: "
                                f"{', '.join(offered)}")
            return config.format
        if public is not None:
            return public.format
        split = tree.get("train") if isinstance(tree, dict) else None
        if isinstance(split, dict):
            if "regression_labels" in split and "mmsa" in offered:
                return "mmsa"
            ids = split.get("id")
            if "labels" in split:
                if getattr(ids, "ndim", 1) == 2 and "mult" in offered:
                    return "mult"
                if "multibench" in offered:
                    return "multibench"
        raise UserError(f"{path}: cannot tell its format from its name or keys; name it with --set format="
                        f"{'|'.join(offered)}")

    # -- labels (a subclass may override) -----------------------------------------------------------
    def labels(self, values: np.ndarray, where: str) -> np.ndarray:
        """The label column from the file's (n,) float64 values; ``where`` names file, split and key
        for errors. Continuous: sentiment on [-3, 3]. Binary: {0, 1} or {-1, 1} (or booleans), stored
        0/1 with positive = value > 0, MultiBench's rule."""
        if self.label_spec.kind == "continuous":
            low, high = SENTIMENT_RANGE
            bad = ~((values >= low) & (values <= high))
            if bad.any():
                raise UserError(f"{where}: {int(bad.sum())} {self.label_spec.name} values outside "
                                f"[{low:g}, {high:g}], e.g. {values[bad][0]:g}")
            return values
        distinct = set(np.unique(values).tolist())
        if not (distinct <= {0.0, 1.0} or distinct <= {-1.0, 1.0}):
            shown = ", ".join(f"{v:g}" for v in sorted(distinct)[:4])
            raise UserError(f"{where}: {len(distinct)} distinct values ({shown}{', ...' if len(distinct) > 4 else ''})"
                            f", not a binary {self.label_spec.name} label (0/1 or -1/1)")
        return (values > 0).astype(np.int64)


def label_spec(name: str, kind: Literal["categorical", "continuous"], description: str, scale: str) -> LabelSpec:
    """A joint label with its scale (sentiment on [-3, 3], or binary), so the evaluator scores it by
    that convention (`mmpipe.store.manifest`)."""
    return LabelSpec(name, kind, "joint", description, scale=scale)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        block = bytearray(_HASH_BLOCK)
        view = memoryview(block)
        while True:
            n = handle.readinto(block)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def _all_keys() -> tuple[str, ...]:
    return tuple(sorted(set().union(*(f.keys() for f in SOURCE_FORMATS.values()))))


# -- validation ----------------------------------------------------------------------------------------
def _where(source: SourceFile, split: str | None = None, key: str | None = None) -> str:
    parts = [str(source.path)] + ([f"split {split!r}"] if split else []) + ([f"key {key!r}"] if key else [])
    return ", ".join(parts)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray | FileArray)


def _validate(dataset: AffectDataset, source: SourceFile, tree: Any) -> AffectSource:
    fmt = SOURCE_FORMATS[source.format]
    if not isinstance(tree, dict):
        raise UserError(f"{source.path}: holds a {type(tree).__name__}, not a dict of train/valid/test splits")
    splits: dict[str, dict] = {}
    for name in FILE_SPLITS:
        if name not in tree:
            keys = ", ".join(map(repr, list(tree)[:8])) or "none"
            raise UserError(f"{_where(source, name)}: the split is missing (top-level keys: {keys})")
        if not isinstance(tree[name], dict):
            raise UserError(f"{_where(source, name)}: holds a {type(tree[name]).__name__}, not a dict of keys")
        for key in fmt.required():
            if key not in tree[name]:
                keys = ", ".join(map(repr, tree[name])) or "none"
                raise UserError(f"{_where(source, name, key)}: the key is missing ({fmt.title} format; the split "
                                f"has {keys})")
        splits[name] = tree[name]

    shapes: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, split in splits.items():
        rows = {}
        for key in MODALITIES:
            array = split[key]
            if not _is_array(array) or array.ndim != 3 or array.dtype.kind not in "fiu":
                what = f"{array.dtype} array of shape {array.shape}" if _is_array(array) else type(array).__name__
                raise UserError(f"{_where(source, name, key)}: holds a {what}, not numeric [N, T, D] sequences")
            rows[key] = array.shape[0]
            if key in shapes and shapes[key][1] != array.shape[1:]:
                first, shape = shapes[key]
                raise UserError(f"{_where(source, name, key)}: steps x dims {array.shape[1]} x {array.shape[2]} "
                                f"disagree with split {first!r} ({shape[0]} x {shape[1]})")
            shapes.setdefault(key, (name, array.shape[1:]))
        for key in (fmt.labels, fmt.ids, *([fmt.raw_text] if fmt.raw_text in split else [])):
            rows[key] = _rows(source, name, key, split[key])
        odd = next((k for k, n in rows.items() if n != rows["text"]), None)
        if odd is not None:
            listed = ", ".join(f"{k} {n}" for k, n in rows.items())
            raise UserError(f"{_where(source, name, odd)}: {rows[odd]} rows, but key 'text' has {rows['text']} "
                            f"({listed}): labels, ids and features are misaligned")
        if rows[fmt.labels] < MIN_SPLIT_ROWS:
            raise UserError(f"{_where(source, name)}: {rows[fmt.labels]} rows; every split needs at least "
                            f"{MIN_SPLIT_ROWS}")

    steps = {m: shapes[m][1][0] for m in MODALITIES}
    aligned = len(set(steps.values())) == 1
    table, renamed = _table(dataset, source, fmt, splits)
    data = tuple(_modality(dataset, source, fmt, splits, m, aligned) for m in MODALITIES)
    return AffectSource(dataset.name, source, table, (dataset.label_spec,), data, aligned, renamed)


def _rows(source: SourceFile, split: str, key: str, value: Any) -> int:
    if _is_array(value):
        return value.shape[0] if value.ndim else 0
    if isinstance(value, list | tuple):
        return len(value)
    raise UserError(f"{_where(source, split, key)}: holds a {type(value).__name__}, not one value per row")


def _table(dataset: AffectDataset, source: SourceFile, fmt: SourceFormat,
           splits: dict[str, dict]) -> tuple[pd.DataFrame, int]:
    ids, groups, split_column, labels, texts = [], [], [], [], []
    for name, split in splits.items():
        where = _where(source, name, fmt.labels)
        values = _numeric(np.asarray(split[fmt.labels]), where)
        if values.ndim > 1 and values.shape[1:] not in ((1,), (1, 1)):
            raise UserError(f"{where}: labels of shape {values.shape}; accepted: (N,), (N, 1) or (N, 1, 1)")
        values = values.reshape(len(values)).astype(np.float64)
        if not np.isfinite(values).all():
            raise UserError(f"{where}: {int((~np.isfinite(values)).sum())} labels are NaN or infinite")
        labels.append(dataset.labels(values, where))
        for value in _items(split[fmt.ids]):
            sample_id, group = _sample_id(value, _where(source, name, fmt.ids))
            ids.append(sample_id)
            groups.append(group)
        split_column += [FILE_SPLITS[name]] * len(values)
        if fmt.raw_text and fmt.raw_text in split:
            texts += [_text(v) for v in _items(split[fmt.raw_text])]
    unique, renamed = _unique(ids)
    # dtypes as a Parquet round trip gives them back, so a stored manifest keeps its version:
    # strings (None where an id names no video), or object when no id names one
    table = pd.DataFrame({"sample_id": unique, "split": split_column,
                          "group": pd.Series(groups, dtype=None if any(groups) else "object")})
    table[dataset.label_spec.name] = np.concatenate(labels)
    if texts:
        table[RAW_TEXT] = texts
    return table, renamed


def _numeric(values: np.ndarray, where: str) -> np.ndarray:
    if values.dtype.kind == "O":
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{where}: holds values that are not numbers") from None
    if values.dtype.kind not in "fiub":
        raise UserError(f"{where}: holds {values.dtype} values, not numbers")
    return values


def _items(value: Any) -> list:
    return list(np.asarray(value)) if _is_array(value) else list(value)


def _decode(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).decode("latin1")
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


_MULTIBENCH_ID = re.compile(r"^(.*)\[[^\[\]]*\]$")


def _sample_id(value: Any, where: str) -> tuple[str, str | None]:
    """(sample id, group = the video it comes from, or None) from one file id: MMSA
    ``video$_$clip``, MultiBench ``video[segment]``, MulT ``[video, start, end]``."""
    if isinstance(value, np.ndarray | list | tuple):
        parts = [_decode(v).strip() for v in np.asarray(value, dtype=object).reshape(-1)]
        if not parts or not parts[0]:
            raise UserError(f"{where}: an empty id")
        return "/".join(parts), parts[0]
    text = _decode(value).strip()
    if not text:
        raise UserError(f"{where}: an empty id")
    if "$_$" in text:
        return text, text.split("$_$", 1)[0]
    match = _MULTIBENCH_ID.match(text)
    return text, (match.group(1) if match and match.group(1) else None)


def _unique(ids: list[str]) -> tuple[list[str], int]:
    """Repeated ids get a ``#2``, ``#3`` ... suffix (in file order); how many were renamed."""
    seen: dict[str, int] = {}
    out, renamed = [], 0
    for sample_id in ids:
        count = seen.get(sample_id, 0) + 1
        seen[sample_id] = count
        if count > 1:
            renamed += 1
            sample_id = f"{sample_id}#{count}"
        out.append(sample_id)
    return out, renamed


def _text(value: Any) -> str:
    return _decode(value).strip()


def _modality(dataset: AffectDataset, source: SourceFile, fmt: SourceFormat, splits: dict[str, dict],
              modality: str, aligned: bool) -> ModalityData:
    arrays = {FILE_SPLITS[name]: split[modality] for name, split in splits.items()}
    first = arrays["train"]
    steps, dim = int(first.shape[1]), int(first.shape[2])
    dtypes = {a.dtype for a in arrays.values()}
    dtype = np.result_type(*dtypes)
    lengths = None
    if fmt.padding == "front":
        rule = LengthRule("front-zeros")
    elif modality in fmt.mask and fmt.mask[modality] in splits["train"]:
        rule = LengthRule("end-mask", fmt.mask[modality])
        lengths = {FILE_SPLITS[n]: _mask_lengths(source, n, rule.key, s.get(rule.key), len(s[modality]), steps)
                   for n, s in splits.items()}
    elif modality in fmt.lengths and not aligned and fmt.lengths[modality] in splits["train"]:
        rule = LengthRule("end-lengths", fmt.lengths[modality])
        lengths = {FILE_SPLITS[n]: _given_lengths(source, n, rule.key, s.get(rule.key), len(s[modality]), steps)
                   for n, s in splits.items()}
    else:
        rule = LengthRule("end-zeros")
    feature = dataset.features[source.format][modality]
    return ModalityData(modality, feature, modality, arrays, steps, dim, np.dtype(dtype), rule, lengths)


def _given_lengths(source: SourceFile, split: str, key: str, value: Any, n: int, steps: int) -> np.ndarray:
    where = _where(source, split, key)
    if value is None:
        raise UserError(f"{where}: the key is missing (split 'train' has it)")
    if not (_is_array(value) or isinstance(value, list | tuple)):
        raise UserError(f"{where}: holds a {type(value).__name__}, not one length per row")
    values = _numeric(np.asarray(value), where).reshape(-1)
    if len(values) != n:
        raise UserError(f"{where}: {len(values)} lengths for {n} rows")
    if not (np.isfinite(values) & (values == np.round(values))).all():
        raise UserError(f"{where}: lengths that are not whole numbers")
    bad = (values < 0) | (values > steps)
    if bad.any():
        raise UserError(f"{where}: {int(bad.sum())} lengths outside 0..{steps} (the steps of the features), "
                        f"e.g. {values[bad][0]:g}")
    return values.astype(np.int64)


def _mask_lengths(source: SourceFile, split: str, key: str, value: Any, n: int, steps: int) -> np.ndarray:
    where = _where(source, split, key)
    if value is None:
        raise UserError(f"{where}: the key is missing (split 'train' has it)")
    if not _is_array(value) or value.ndim != 3 or value.shape[0] != n or value.shape[1] < 2 \
            or value.shape[2] != steps:
        shape = value.shape if _is_array(value) else type(value).__name__
        raise UserError(f"{where}: holds {shape}, not [{n}, 3, {steps}] token ids / attention mask / segment ids")
    mask = np.asarray(value)[:, 1, :]
    if not np.isin(mask, (0, 1)).all():
        raise UserError(f"{where}: its attention mask (row 1) holds values other than 0 and 1")
    return mask.sum(axis=1).astype(np.int64)
