"""CREMA-D (Cao et al., 2014): 7,442 audio-visual clips of 91 actors speaking 12 fixed sentences
with 6 emotions. MultiLoReFT paper §4.1, §5 (Table 2, Table 3a) and Appendix A.5.

Layout of ``data_dir`` (a ``git lfs clone`` of CheyneyComputerScience/CREMA-D)::

    AudioWAV/{clip}.wav        16 kHz mono 16-bit PCM                      -> modality audio
    VideoFlash/{clip}.flv      Flash video (``video_ext`` for converted copies) -> modality video
    VideoDemographics.csv      ActorID, Age, Sex, Race, Ethnicity

and ``clip`` = ``{actor}_{sentence}_{emotion}_{level}``, e.g. ``1001_DFA_ANG_XX``.

Modalities, in the paper's order: ``video`` (kind video), then ``audio`` (kind audio) ("Crema-D
(M1:Video, M2:Audio)", §5): a two-modality method sees video as its modality 1, audio as 2.

Labels and the component that should carry them (our reading of the paper):

- ``sentence`` (12 codes) → **audio**. §5: "Sentence ID, best captured by the audio modality";
  Table 2 has the audio component (its z_m2) at 0.975 against 0.244 for the video one (z_m1).
  Lip-reading could carry some of it, but the paper's label assignment is audio.
- ``sex`` → **video** and ``ethnicity`` → **video**. §5: "Ethnicity; and Sex, both conveyed
  primarily through video" (Table 2: the video component ≈ 1.0 / 0.98). The voice carries sex
  too; we follow the paper.
- ``race`` → **video** and ``age`` (years, continuous) → **video**: not probed in the paper; assigned
  like the other actor demographics, which the paper treats as visual.
- ``emotion`` (6) → **shared**. §4.1: the dataset "provides both shared emotional signals and
  modality-specific cues"; raters judged emotion from the face alone and from the voice alone.
  (Table 3a/A.5 predict emotion from the *fused* representation; that is a use, not an owner.)
- ``emotion_level`` (LO/MD/HI/XX; XX = unspecified, 6,077 of 7,442 clips) → **shared**, for the
  same reason as emotion. Intensity was only varied for the IEO sentence.

Columns: ``sample_id`` = clip name, ``group`` = actor id (string), the labels above, the media
paths ``video_path`` / ``audio_path`` (relative to ``data_dir``), ``has_video`` / ``has_audio``,
``video_bytes`` / ``audio_bytes`` (file sizes, 0 when absent), ``known_broken`` and ``known_issue``.

Known-broken clips keep their manifest rows, flagged (``known_broken``); the extraction engine
masks them (``valid`` False, recorded as failures) in the broken modality only, without decoding
(:meth:`Cremad.unusable_media`), so adapters and probes never train on them. Source: the
dataset's README (github.com/CheyneyComputerScience/CREMA-D, sections "Video Files" and "Audio
Files"; the clips were reported by ruanxiu520):

- 1076_MTI_NEU_XX: FLV very short with no audio (the WAV is fine)
- 1076_MTI_SAD_XX: FLV error picture, very short, no audio; the WAV has no audio either
- 1064_TIE_SAD_XX: the FLV and the MP3 have no duration
- 1064_IEO_DIS_MD: the FLV and the MP3 are one minute long with every emotion of the IEO sentence

The same README lists 28 FLVs whose *audio track* was missing until 16 Dec 2020; we never read
the FLV audio (the audio modality comes from AudioWAV), so they are not flagged.

Missing media, decided as follows: the clips are the union of ``AudioWAV/*.wav`` and
``VideoFlash/*.{video_ext}``. A clip found in only one folder is kept with ``has_video`` or
``has_audio`` false; the extraction engine then records the missing file as a failure, as it does
for any unreadable file. A *mis-laid* directory is a :class:`UserError` naming what was expected
where: no ``data_dir``, a missing or empty media folder, no demographics file (or missing
columns, or an actor absent from it), a file name that is not a CREMA-D clip name, the two
folders sharing no clip, or git-lfs pointer stubs instead of media (a zip download).

Shipped metadata (:data:`METADATA_DIR`, package data ``cremad_metadata/``): verbatim copies of
the dataset's ``VideoDemographics.csv`` (91 actors) and ``SentenceFilenames.csv`` (all 7,442 clip
names), and ``AudioWAV_sizes.tsv`` (the byte size of every ``AudioWAV/*.wav``; 16 kHz mono 16-bit,
so seconds = (bytes - 44) / 32000). The tests and benchmarks build their synthetic CREMA-D trees
from them, so they need no download. A manifest still reads the demographics of ``data_dir`` (every
checkout has the file, and a tree without it is mis-laid); the shipped copy is the reference to
compare a checkout with.

Splits: ``split="group"`` (default) is actor-disjoint with seeded assignment of actors
(:func:`group_split`); ``split="stratified"`` is a seeded random split stratified by
``stratify_by`` (default emotion) in which actors span splits — the ``split_protocol`` says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.base import DATASETS, Dataset
from mmpipe.pipeline.datasets.splits import check_fractions, fraction_label, group_split, stratified_split
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from mmpipe.store.ranges import FRACTION, SEED, SHARE, Checked

AUDIO_DIR = "AudioWAV"
VIDEO_DIR = "VideoFlash"
DEMOGRAPHICS = "VideoDemographics.csv"
METADATA_DIR = Path(__file__).with_name("cremad_metadata")
"""The real CREMA-D metadata shipped with the package: ``VideoDemographics.csv``,
``SentenceFilenames.csv`` and ``AudioWAV_sizes.tsv`` (see the module docstring)."""

SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
CLIP_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")

# clip -> {modality kind: what is wrong}. The WAVs of the 1064 clips have ordinary lengths
# (3.3 s and 4.1 s in AudioWAV_sizes.tsv): the README's complaint is about the FLV and the MP3.
KNOWN_BROKEN: dict[str, dict[str, str]] = {
    "1076_MTI_NEU_XX": {"video": "very short, no audio track (WAV fine)"},
    "1076_MTI_SAD_XX": {"video": "error picture, very short", "audio": "no audio, very short"},
    "1064_TIE_SAD_XX": {"video": "no duration"},
    "1064_IEO_DIS_MD": {"video": "one minute long, every emotion of the IEO sentence"},
}


def known_issue(clip: str) -> str:
    """The README's complaint about ``clip`` as one line ("" when none), e.g. "video: no duration"."""
    return "; ".join(f"{kind}: {text}" for kind, text in KNOWN_BROKEN.get(clip, {}).items())


_LFS_POINTER = b"version https://git-lfs"


@dataclass(frozen=True)
class CremadConfig(Checked):
    data_dir: str = ""
    split: Literal["group", "stratified"] = "group"
    stratify_by: Literal["emotion", "sentence", "emotion_level", "sex", "race", "ethnicity"] = "emotion"
    seed: Annotated[int, SEED] = 0
    train_frac: Annotated[float, FRACTION] = 0.70  # train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15
    video_ext: str = "flv"

    def check(self) -> None:
        check_fractions(self.train_frac, self.val_frac)


LABELS = (
    LabelSpec("emotion", "categorical", "shared", "displayed emotion (ANG DIS FEA HAP NEU SAD)"),
    LabelSpec("emotion_level", "categorical", "shared", "displayed intensity (LO MD HI; XX unspecified)"),
    LabelSpec("sentence", "categorical", "audio", "which of the 12 sentences was spoken (§5: audio)"),
    LabelSpec("sex", "categorical", "video", "actor's sex (§5: conveyed primarily through video)"),
    LabelSpec("ethnicity", "categorical", "video", "actor's ethnicity (§5: conveyed primarily through video)"),
    LabelSpec("race", "categorical", "video", "actor's race (not in the paper; a demographic, like ethnicity)"),
    LabelSpec("age", "continuous", "video", "actor's age in years (not in the paper; a demographic)"),
)


def _media_stems(folder: Path, suffix: str, data_dir: Path) -> dict[str, int]:
    """Clip name -> file size for ``folder/*.suffix``; raises UserError for a missing/empty folder."""
    if not folder.is_dir():
        raise UserError(f"cremad: expected the folder {folder.name}/ in {data_dir} (data_dir should be a "
                        f"CREMA-D checkout holding {AUDIO_DIR}/, {VIDEO_DIR}/ and {DEMOGRAPHICS})")
    # hidden files (macOS "._" AppleDouble companions, editor droppings) are not clips
    sizes = {p.name[: -len(suffix)]: p.stat().st_size for p in folder.iterdir()
             if p.name.endswith(suffix) and not p.name.startswith(".")}
    if not sizes:
        others = sorted({p.suffix for p in folder.iterdir() if p.is_file()})
        found = f" (found only {', '.join(others)} files)" if others else " (it is empty)"
        raise UserError(f"cremad: expected *{suffix} files in {folder}{found}")
    return sizes


def _check_not_lfs_pointers(folder: Path, suffix: str, sizes: dict[str, int]) -> None:
    """A zip download of the repository holds ~130-byte git-lfs pointer files instead of media."""
    stubs = []
    for name, size in sizes.items():
        if size < 1024:
            with open(folder / f"{name}{suffix}", "rb") as handle:
                if handle.read(len(_LFS_POINTER)) == _LFS_POINTER:
                    stubs.append(name)
    if stubs:
        raise UserError(f"cremad: {len(stubs)} files in {folder} are git-lfs pointer stubs, not media "
                        f"(e.g. {sorted(stubs)[0]}{suffix}); fetch them with `git lfs pull` in the checkout")


def _parse_clip(name: str, where: Path) -> tuple[str, str, str, str]:
    match = CLIP_NAME.match(name)
    if (match is None or match.group(2) not in SENTENCES or match.group(3) not in EMOTIONS
            or match.group(4) not in LEVELS):
        raise UserError(f"cremad: {where / name} is not a CREMA-D clip name "
                        "({actor}_{sentence}_{emotion}_{level}, e.g. 1001_DFA_ANG_XX)")
    return match.group(1), match.group(2), match.group(3), match.group(4)


def _demographics(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"cremad: expected {path.name} (ActorID, Age, Sex, Race, Ethnicity) in {path.parent}")
    table = pd.read_csv(path)
    missing = {"ActorID", "Age", "Sex", "Race", "Ethnicity"} - set(table.columns)
    if missing:
        raise UserError(f"cremad: {path} lacks the columns {', '.join(sorted(missing))}")
    table = table.assign(ActorID=table["ActorID"].astype(str))
    if table["ActorID"].duplicated().any():
        dupes = sorted(set(table.loc[table["ActorID"].duplicated(), "ActorID"]))
        raise UserError(f"cremad: {path} lists actors more than once: {', '.join(dupes[:5])}")
    return table.set_index("ActorID")


@DATASETS.register("cremad")
class Cremad(Dataset):
    name = "cremad"
    description = ("CREMA-D: 7,442 clips, 91 actors; video (FLV) and audio (WAV); emotion, sentence, "
                   "demographics; actor-disjoint splits")
    Config = CremadConfig
    modalities = (Modality("video", "video"), Modality("audio", "audio"))

    def manifest(self, config: CremadConfig) -> Manifest:
        if not config.data_dir:
            raise UserError(f"cremad needs data_dir: a CREMA-D checkout holding {AUDIO_DIR}/, {VIDEO_DIR}/ "
                            f"and {DEMOGRAPHICS}")
        data_dir = Path(config.data_dir).expanduser()
        if not data_dir.is_dir():
            raise UserError(f"cremad: data_dir {data_dir} is not a directory")
        video_suffix = "." + config.video_ext.lstrip(".")
        audio = _media_stems(data_dir / AUDIO_DIR, ".wav", data_dir)
        video = _media_stems(data_dir / VIDEO_DIR, video_suffix, data_dir)
        _check_not_lfs_pointers(data_dir / AUDIO_DIR, ".wav", audio)
        _check_not_lfs_pointers(data_dir / VIDEO_DIR, video_suffix, video)
        if not set(audio) & set(video):
            raise UserError(f"cremad: {AUDIO_DIR}/ and {VIDEO_DIR}/ in {data_dir} share no clip name "
                            f"(e.g. {min(audio)}.wav vs {min(video)}{video_suffix}); are they from the same dataset?")
        demographics = _demographics(data_dir / DEMOGRAPHICS)

        clips = sorted(set(audio) | set(video))
        parts = [_parse_clip(c, data_dir / (AUDIO_DIR if c in audio else VIDEO_DIR)) for c in clips]
        actors = [p[0] for p in parts]
        unknown = sorted(set(actors) - set(demographics.index))
        if unknown:
            raise UserError(f"cremad: actors {', '.join(unknown[:5])} have clips but no row in "
                            f"{data_dir / DEMOGRAPHICS}")
        people = demographics.loc[actors]
        table = pd.DataFrame({
            "sample_id": clips,
            "group": actors,
            "emotion": [p[2] for p in parts],
            "emotion_level": [p[3] for p in parts],
            "sentence": [p[1] for p in parts],
            "sex": people["Sex"].astype(str).to_numpy(),
            "ethnicity": people["Ethnicity"].astype(str).to_numpy(),
            "race": people["Race"].astype(str).to_numpy(),
            "age": people["Age"].astype(np.float64).to_numpy(),
            "video_path": [f"{VIDEO_DIR}/{c}{video_suffix}" for c in clips],
            "audio_path": [f"{AUDIO_DIR}/{c}.wav" for c in clips],
            "has_video": [c in video for c in clips],
            "has_audio": [c in audio for c in clips],
            # sizes make a re-encoded copy a new manifest version while a moved tree stays the same one
            "video_bytes": np.array([video.get(c, 0) for c in clips], dtype=np.int64),
            "audio_bytes": np.array([audio.get(c, 0) for c in clips], dtype=np.int64),
            "known_broken": [c in KNOWN_BROKEN for c in clips],
            "known_issue": [known_issue(c) for c in clips],
        })
        fractions = fraction_label(config.train_frac, config.val_frac)
        if config.split == "group":
            split = group_split(table["group"].to_numpy(), config.train_frac, config.val_frac, config.seed)
            counts = {s: len(set(table["group"][split == s])) for s in ("train", "val", "test")}
            protocol = (f"actor-disjoint {fractions} by actor ({counts['train']}/{counts['val']}/{counts['test']} "
                        f"actors), seed {config.seed}")
        else:
            split = stratified_split(table[config.stratify_by].to_numpy(), config.train_frac, config.val_frac,
                                     config.seed)
            protocol = (f"stratified random by {config.stratify_by} {fractions}, seed {config.seed} "
                        "(actors span splits)")
        table.insert(1, "split", split.astype(str))
        modalities = (Modality("video", "video", "video_path"), Modality("audio", "audio", "audio_path"))
        return Manifest("cremad", table, LABELS, modalities, protocol)

    def unusable_media(self, manifest: Manifest, modality: str) -> dict[int, str]:
        """Clips without the modality's file (``has_video``/``has_audio`` false) and the clips the
        dataset's README calls broken in that modality (:data:`KNOWN_BROKEN`)."""
        declared = manifest.modality(modality)
        kind, column = declared.kind, declared.column
        table = manifest.table
        folder = VIDEO_DIR if kind == "video" else AUDIO_DIR
        problems = {}
        for row, (clip, present, path) in enumerate(zip(table["sample_id"], table[f"has_{kind}"], table[column],
                                                        strict=True)):
            if not present:
                problems[row] = f"missing: no {path} in the data_dir (the clip has no file in {folder}/)"
            elif kind in KNOWN_BROKEN.get(clip, {}):
                problems[row] = f"known broken (CREMA-D README): {kind}: {KNOWN_BROKEN[clip][kind]}"
        return problems
