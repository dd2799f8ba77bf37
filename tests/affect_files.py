"""Synthetic affect feature pickles in the exact public layouts, written with `pickle.dump` (never
through mmpipe), and what mmpipe should make of them.

Layouts (facts of the public files; shapes small in N, true in T and D):

- MultiBench (``mosi_raw.pkl``, ``mosei_raw.pkl``, ``humor.pkl``, ``sarcasm.pkl``):
  ``{"train"|"valid"|"test": {"vision", "audio", "text": float32 [N, 50, D], "labels", "id"}}``;
  every modality padded at the FRONT, independently (a row's leading steps are all zero); ids
  ``"video[segment]"``; text dims 300 (GloVe); mosi/mosei audio 74, vision 35; humor/sarcasm audio
  81, vision 371. Some rows have an all-zero text (MultiBench's loader drops them).
- MulT (``mosi_data.pkl``): the same keys; labels ``[N, 1, 1]``; ids ``[N, 3]`` bytes
  (video, start, end); MOSI audio 5, vision 20; front-padded.
- MMSA (``MOSI/Processed/aligned_50.pkl`` / ``unaligned_50.pkl``): ``raw_text``, ``audio``,
  ``vision``, ``id`` (``"video$_$clip"``), ``text`` (BERT features ``[N, 50, 768]``, NOT zero at
  padded tokens), ``text_bert`` (``[N, 3, 50]``: ids, attention mask, segment ids),
  ``audio_lengths``, ``vision_lengths``, ``annotations``, ``classification_labels``,
  ``regression_labels``; padded at the END. Aligned: every modality 50 steps; unaligned: audio 375,
  vision 500 (MOSI).

`Expected` holds, in manifest row order (train, valid, test), the sample ids, labels, and per
modality the true lengths and the rows as the store should hold them (valid steps first, then
zeros).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")
SIZES = (40, 12, 12)  # rows per split: enough for a fit with minibatch 16 and for probes
SENTIMENT_DIMS = {"text": 300, "audio": 74, "vision": 35}  # mosi_raw / mosei_raw
OPENFACE_DIMS = {"text": 300, "audio": 81, "vision": 371}  # humor / sarcasm
MULT_MOSI_DIMS = {"text": 300, "audio": 5, "vision": 20}
MMSA_MOSI_DIMS = {"text": 768, "audio": 5, "vision": 20}
MMSA_MOSI_UNALIGNED_STEPS = {"text": 50, "audio": 375, "vision": 500}


@dataclass
class Expected:
    ids: list[str]
    groups: list[str | None]
    labels: np.ndarray  # (N,) as the manifest should hold them
    lengths: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (N,)
    stored: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (N, T, D) end-padded float32
    raw_text: list[str] | None = None


def dump(tree: dict, path: Path, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(tree, handle, protocol=protocol)
    return path


def _signal(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """A label per row: sentiment on [-3, 3] (one decimal), or a binary 0/1."""
    if kind == "sentiment":
        return np.round(np.clip(rng.normal(0, 1.5, n), -3, 3), 1)
    return (np.arange(n) % 2).astype(np.float64)[rng.permutation(n)]


def _sequences(rng: np.random.Generator, y: np.ndarray, steps: int, dim: int, lengths: np.ndarray,
               front: bool, pad_value: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(file array, stored array): the file pads at the front or the end; the store at the end.
    Every valid step carries the label in its first dims (so fits can learn) and no valid step is
    all zero."""
    n = len(y)
    stored = np.zeros((n, steps, dim), dtype=np.float32)
    file = np.full((n, steps, dim), pad_value, dtype=np.float32)
    for i, length in enumerate(lengths):
        rows = rng.normal(0, 1, (length, dim)).astype(np.float32)
        rows[:, : min(4, dim)] += np.float32(y[i])
        rows[:, 0] = np.where(rows[:, 0] == 0, 1, rows[:, 0])
        stored[i, :length] = rows
        if front:
            file[i, steps - length:] = rows
            file[i, : steps - length] = 0
        else:
            file[i, :length] = rows
    return file, stored


def multibench(dataset: str = "mosi", *, sizes: tuple[int, ...] = SIZES, dims: dict[str, int] | None = None,
               steps: int = 50, seed: int = 0, label_shape: tuple[int, ...] = (1,), empty_text_rows: int = 2,
               mult: bool = False) -> tuple[dict, Expected]:
    """A MultiBench (or, with ``mult``, MulT) tree and what ingest should store."""
    rng = np.random.default_rng(seed)
    kind = "sentiment" if dataset in ("mosi", "mosei") else "binary"
    dims = dims or (OPENFACE_DIMS if kind == "binary" else (MULT_MOSI_DIMS if mult else SENTIMENT_DIMS))
    tree: dict = {}
    expected = Expected([], [], np.zeros(0))
    labels, lengths, stored = [], {m: [] for m in dims}, {m: [] for m in dims}
    for s, (split, n) in enumerate(zip(SPLITS, sizes, strict=True)):
        y = _signal(rng, n, kind)
        videos = [f"{split}vid{i // 2:03d}" for i in range(n)]
        part = {}
        for modality in ("vision", "audio", "text"):
            true = rng.integers(1, steps + 1, n)
            if modality == "text" and empty_text_rows:
                true[:empty_text_rows] = 0  # all-zero text rows, as in mosi_raw.pkl
            file, rows = _sequences(rng, y, steps, dims[modality], true, front=True)
            part[modality] = file
            lengths[modality].append(true)
            stored[modality].append(rows)
        part["labels"] = y.reshape(n, *label_shape).astype(np.float32 if kind == "sentiment" else np.float64)
        if mult:
            part["id"] = np.array([[v.encode(), f"{i}.0".encode(), f"{i + 1}.5".encode()] for i, v in enumerate(videos)])
            expected.ids += [f"{v}/{i}.0/{i + 1}.5" for i, v in enumerate(videos)]
        else:
            part["id"] = np.array([f"{v}[{i % 2 + s}]" for i, v in enumerate(videos)])
            expected.ids += [f"{v}[{i % 2 + s}]" for i, v in enumerate(videos)]
        expected.groups += videos
        labels.append(y if kind == "sentiment" else (y > 0).astype(np.int64))
        tree[split] = part
    expected.labels = np.concatenate(labels)
    expected.lengths = {m: np.concatenate(v) for m, v in lengths.items()}
    expected.stored = {m: np.concatenate(v) for m, v in stored.items()}
    return tree, expected


def mmsa(*, aligned: bool = True, sizes: tuple[int, ...] = SIZES, dims: dict[str, int] | None = None,
         seed: int = 0) -> tuple[dict, Expected]:
    """An MMSA aligned_50 / unaligned_50 tree (MOSI dims by default) and what ingest should store."""
    rng = np.random.default_rng(seed)
    dims = dims or MMSA_MOSI_DIMS
    steps = dict.fromkeys(dims, 50) if aligned else MMSA_MOSI_UNALIGNED_STEPS
    tree: dict = {}
    expected = Expected([], [], np.zeros(0), raw_text=[])
    labels, lengths, stored = [], {m: [] for m in dims}, {m: [] for m in dims}
    for split, n in zip(SPLITS, sizes, strict=True):
        y = _signal(rng, n, "sentiment")
        videos = [f"{split}Vid{i // 3:03d}" for i in range(n)]
        ids = [f"{v}$_${i % 3 + 1}" for i, v in enumerate(videos)]
        text_length = rng.integers(3, 51, n)
        part: dict = {"raw_text": [f"words of clip {i} in {split} " for i in range(n)], "id": np.array(ids, dtype=object)}
        # BERT outputs at padded tokens are not zero: the mask, not zeros, says where a text ends
        part["text"], rows = _sequences(rng, y, 50, dims["text"], text_length, front=False, pad_value=0.25)
        stored["text"].append(rows)
        lengths["text"].append(text_length)
        mask = (np.arange(50)[None, :] < text_length[:, None]).astype(np.float32)
        token_ids = np.where(mask > 0, rng.integers(1000, 3000, (n, 50)), 0).astype(np.float32)
        part["text_bert"] = np.stack([token_ids, mask, np.zeros_like(mask)], axis=1)  # (n, 3, 50)
        for modality in ("audio", "vision"):
            true = rng.integers(1, steps[modality] + 1, n)
            part[modality], rows = _sequences(rng, y, steps[modality], dims[modality], true, front=False)
            part[f"{modality}_lengths"] = [int(v) for v in true]
            lengths[modality].append(true)
            stored[modality].append(rows)
        part["annotations"] = np.array(["Positive" if v > 0 else "Negative" for v in y], dtype=object)
        part["classification_labels"] = np.where(y > 0, 2, np.where(y < 0, 0, 1)).astype(np.float32)
        part["regression_labels"] = y.astype(np.float32)
        tree[split] = part
        expected.ids += ids
        expected.groups += videos
        expected.raw_text += [t.strip() for t in part["raw_text"]]
        labels.append(y.astype(np.float32).astype(np.float64))
    expected.labels = np.concatenate(labels)
    expected.lengths = {m: np.concatenate(v) for m, v in lengths.items()}
    expected.stored = {m: np.concatenate(v) for m, v in stored.items()}
    return tree, expected


def write(kind: str, folder: Path, dataset: str = "mosi", protocol: int = 4, **options) -> tuple[Path, Expected]:
    """Write one public file under ``folder`` at its public path; ``kind``: multibench, mult,
    mmsa-aligned or mmsa-unaligned."""
    if kind == "multibench":
        name = {"mosi": "mosi_raw.pkl", "mosei": "mosei_raw.pkl", "urfunny": "humor.pkl", "mustard": "sarcasm.pkl"}
        tree, expected = multibench(dataset, **options)
        return dump(tree, folder / name[dataset], protocol), expected
    if kind == "mult":
        tree, expected = multibench(dataset, mult=True, label_shape=(1, 1), **options)
        return dump(tree, folder / {"mosi": "mosi_data.pkl", "mosei": "mosei_senti_data.pkl"}[dataset],
                    protocol), expected
    aligned = kind == "mmsa-aligned"
    tree, expected = mmsa(aligned=aligned, **options)
    path = folder / dataset.upper() / "Processed" / ("aligned_50.pkl" if aligned else "unaligned_50.pkl")
    return dump(tree, path, protocol), expected
