"""Builders of synthetic dataset trees laid out exactly like the real downloads.

- :func:`make_cremad_tree`: a CREMA-D checkout with REAL clip names (a subset of
  ``SentenceFilenames.csv``), the REAL ``VideoDemographics.csv``, ``AudioWAV/<clip>.wav`` (16 kHz
  mono 16-bit) of each clip's REAL duration, and small ``VideoFlash/<clip>.flv`` videos.
- :func:`make_multi30k_tree`: a Multi30k checkout (``data/task1/image_splits/{file}.txt`` and
  line-aligned ``data/task1/raw/{file}.{lang}.gz``) plus a folder of small JPEG images.

The real CREMA-D metadata is the copy the package ships (:data:`mmpipe.pipeline.datasets.cremad.METADATA_DIR`),
so the tests need nothing outside the repository. The media writers are those of ``tests/media.py``.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.cremad import METADATA_DIR
from tests.media import write_image, write_video, write_wav

WAV_HEADER_BYTES = 44
WAV_BYTES_PER_SECOND = 16_000 * 2  # 16 kHz, mono, 16-bit


def cremad_meta_dir() -> Path:
    """The real CREMA-D metadata shipped inside the package (``SentenceFilenames.csv``,
    ``VideoDemographics.csv``, ``AudioWAV_sizes.tsv``)."""
    return METADATA_DIR


@cache
def cremad_clip_names() -> tuple[str, ...]:
    """All 7,442 real clip names, in the order of ``SentenceFilenames.csv``."""
    return tuple(pd.read_csv(cremad_meta_dir() / "SentenceFilenames.csv")["Filename"].astype(str))


@cache
def cremad_wav_seconds() -> dict[str, float]:
    """Real duration of every clip's WAV: (bytes − 44) / 32000 s, from ``AudioWAV_sizes.tsv``."""
    sizes = pd.read_csv(cremad_meta_dir() / "AudioWAV_sizes.tsv", sep="\t")
    stems = sizes["file"].str.removesuffix(".wav")
    seconds = (sizes["bytes"] - WAV_HEADER_BYTES) / WAV_BYTES_PER_SECOND
    return dict(zip(stems, seconds.astype(float), strict=True))


def cremad_subset(actors: int = 6, per_actor: int = 4, seed: int = 0) -> list[str]:
    """Real clip names: ``per_actor`` clips from each of ``actors`` actors, all drawn with ``seed``.

    Each actor's clips are spread over emotions (one per emotion before any repeats), so a subset
    of 6 actors × 6 clips holds every emotion for every actor.
    """
    rng = np.random.default_rng(seed)
    names = pd.Series(cremad_clip_names())
    by_actor = names.groupby(names.str[:4])
    chosen_actors = rng.choice(sorted(by_actor.groups), size=actors, replace=False)
    picked: list[str] = []
    for actor in sorted(chosen_actors):
        clips = by_actor.get_group(actor).tolist()
        clips = [clips[i] for i in rng.permutation(len(clips))]
        by_emotion: dict[str, list[str]] = {}
        for clip in clips:
            by_emotion.setdefault(clip.split("_")[2], []).append(clip)
        # round-robin over emotions: the first six picks cover six different emotions
        rounds = [clip for depth in range(max(map(len, by_emotion.values())))
                  for emotion in sorted(by_emotion) if depth < len(by_emotion[emotion])
                  for clip in [by_emotion[emotion][depth]]]
        picked.extend(rounds[:per_actor])
    return sorted(picked)


def make_cremad_tree(root: Path, clips: Sequence[str] | None = None, *, max_seconds: float | None = None,
                     video_frames: int = 6, video_size: tuple[int, int] = (32, 24), audio: bool = True,
                     video: bool = True) -> list[str]:
    """Write a CREMA-D tree under ``root`` and return its clip names (sorted).

    ``clips``: real clip names (default :func:`cremad_subset` ()); a name that is not a real clip
    raises ValueError. Each WAV has the clip's real duration, capped at ``max_seconds`` when given
    (for speed only). ``audio=False`` / ``video=False`` skip that folder entirely (to test
    mis-laid trees). Clip i's media are seeded with i, so every clip has distinct content.
    """
    clips = sorted(cremad_subset() if clips is None else clips)
    seconds = cremad_wav_seconds()
    unknown = [c for c in clips if c not in seconds]
    if unknown:
        raise ValueError(f"not real CREMA-D clip names: {unknown[:3]}")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cremad_meta_dir() / "VideoDemographics.csv", root / "VideoDemographics.csv")
    for index, clip in enumerate(clips):
        if audio:
            duration = seconds[clip] if max_seconds is None else min(seconds[clip], max_seconds)
            write_wav(root / "AudioWAV" / f"{clip}.wav", duration, seed=index)
        if video:
            write_video(root / "VideoFlash" / f"{clip}.flv", frames=video_frames, size=video_size, seed=index)
    return clips


MULTI30K_FILES = {"train": 12, "val": 6, "test_2016_flickr": 6}

# Translations of one scene description per row; each caption line of a file is one scene with a
# distinct image number so captions differ across lines.
_SCENES = {
    "en": ["A dog runs across the green grass.", "Two children play with a red ball.",
           "A man rides a bicycle down the street.", "A woman reads a book in the park."],
    "fr": ["Un chien court sur l'herbe verte.", "Deux enfants jouent avec un ballon rouge.",
           "Un homme fait du vélo dans la rue.", "Une femme lit un livre dans le parc."],
    "de": ["Ein Hund läuft über das grüne Gras.", "Zwei Kinder spielen mit einem roten Ball.",
           "Ein Mann fährt mit dem Fahrrad die Straße entlang.", "Eine Frau liest ein Buch im Park."],
    "cs": ["Pes běží po zelené trávě.", "Dvě děti si hrají s červeným míčem.",
           "Muž jede na kole po ulici.", "Žena čte knihu v parku."],
}


def multi30k_caption(lang: str, line: int) -> str:
    """The synthetic caption of ``line`` in ``lang`` (rows are translations of each other)."""
    return f"{_SCENES[lang][line % len(_SCENES[lang])]} ({line})"


def make_multi30k_tree(root: Path, files: dict[str, int] | None = None, *,
                       languages: Sequence[str] = ("en", "fr", "de", "cs"), image_dir: Path | None = None,
                       image_size: tuple[int, int] = (32, 24), seed: int = 0) -> dict[str, list[str]]:
    """Write a Multi30k tree under ``root`` and return {file: [image names in line order]}.

    ``files`` maps a split file name to its number of images (default :data:`MULTI30K_FILES`:
    train/val/test_2016_flickr). Images get distinct Flickr-like numeric names (``<digits>.jpg``)
    and are written as small JPEGs to ``image_dir`` (default ``root/images``, the dataset's
    default). Captions: ``data/task1/raw/{file}.{lang}.gz``, line i of every language a
    translation of the same scene (:func:`multi30k_caption`).
    """
    files = dict(MULTI30K_FILES if files is None else files)
    image_dir = root / "images" if image_dir is None else image_dir
    rng = np.random.default_rng(seed)
    total = sum(files.values())
    numbers: list[int] = []
    while len(numbers) < total:  # distinct Flickr-like ids, 8 to 10 digits
        candidate = int(rng.integers(10_000_000, 10_000_000_000))
        if candidate not in numbers:
            numbers.append(candidate)
    task = root / "data" / "task1"
    (task / "image_splits").mkdir(parents=True, exist_ok=True)
    (task / "raw").mkdir(parents=True, exist_ok=True)
    listing: dict[str, list[str]] = {}
    start = 0
    for name, count in files.items():
        images = [f"{n}.jpg" for n in numbers[start:start + count]]
        (task / "image_splits" / f"{name}.txt").write_text("".join(f"{image}\n" for image in images))
        for lang in languages:
            with gzip.open(task / "raw" / f"{name}.{lang}.gz", "wt", encoding="utf-8") as handle:
                handle.writelines(f"{multi30k_caption(lang, start + i)}\n" for i in range(count))
        for offset, image in enumerate(images):
            write_image(image_dir / image, size=image_size, seed=seed * 100_000 + start + offset)
        listing[name] = images
        start += count
    return listing


def make_three_modality_tree(root: Path, n: int = 6) -> Path:
    """A folder-dataset tree with video, audio and text columns (the layout of the sentiment
    benchmarks) and two labels: ``mood`` (alternating) and ``topic`` (three values); two samples
    per group."""
    from tests.tiny_models import TEXTS

    rows = []
    for i in range(n):
        write_video(root / "video" / f"s{i}.mp4", frames=4 + i % 6, seed=i)
        write_wav(root / "audio" / f"s{i}.wav", 0.3 + 0.1 * (i % 5), seed=i)
        rows.append({"sample_id": f"s{i}", "video": f"video/s{i}.mp4", "audio": f"audio/s{i}.wav",
                     "text": TEXTS[i % len(TEXTS)], "mood": ["calm", "angry"][i % 2], "topic": f"t{i % 3}",
                     "group": f"g{i // 2}"})
    pd.DataFrame(rows).to_csv(root / "samples.csv", index=False)
    return root
