"""Flickr30K-Multi: Multi30k task 1 (Elliott et al., 2016), images paired with a caption whose
language is the label. MultiLoReFT paper §4.1, §5 and Table 2 ("Flickr (M1:Image, M2:Caption),
where the label indicates whether captions are in English or French").

Layout of ``data_dir`` (a checkout of github.com/multi30k/dataset)::

    data/task1/image_splits/{file}.txt     one image file name per line, e.g. 1000092795.jpg
    data/task1/raw/{file}.{lang}.gz        one caption per line, line-aligned with the image list

``file`` is ``train``, ``val``, ``test_2016_flickr``, ... and ``lang`` one of en, fr, de, cs. In
task 1 the captions of one line are translations of each other, so the semantic content is shared
between image and caption while the language is specific to the caption.

The Flickr30k images themselves are not in Multi30k; they come from ``image_dir`` (default
``<data_dir>/images``; a relative path is taken relative to ``data_dir``).

Modalities, in the paper's order: ``image`` (kind image), then ``caption`` (kind text). One label:
``language`` (categorical, owner **caption**: only the caption carries it; an image says nothing
about the language of its caption, so the paper's z_s and image component z_m1 sit at chance,
0.500, in Table 2).

What the paper leaves open, and our defaults (each a config field):

- which languages: "We use English and French captions" → ``languages=("en", "fr")``; any two or
  more of en/fr/de/cs work.
- how captions are paired with images: the paper pairs "each image with its English or French
  caption". ``pairing="one"`` (default) gives every image exactly one row; within each split the
  images are shuffled with ``seed`` and dealt the languages in turn, so the classes are balanced
  (chance = 1/len(languages)) and every caption's translation stays out of the data.
  ``pairing="all"`` gives one row per (image, language); then ``group`` keeps both rows of an
  image in the same split.
- which files: ``split="official"`` (default) maps Multi30k's own ``train_file``/``val_file``/
  ``test_file`` (train / val / test_2016_flickr, the 2016 test set that has French) to
  train/val/test. ``split="group"`` pools those three files and draws a seeded image-disjoint split
  with ``train_frac``/``val_frac``.

Columns: ``sample_id`` = ``{file}/{image stem}/{lang}``, ``group`` = image stem, ``language``,
``image_path`` (the file name, relative to ``image_dir``, so moving the images keeps the version),
``caption`` (the text itself), ``source_file``, ``has_image``. Images missing from ``image_dir``
keep their rows (``has_image`` false; the extraction engine records them as failures); an
``image_dir`` that holds none of the listed images is a :class:`UserError`.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from mmpipe.pipeline.datasets.base import DATASETS, Dataset
from mmpipe.pipeline.datasets.splits import check_fractions, fraction_label, group_split
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SPLITS, LabelSpec, Manifest, Modality
from mmpipe.store.ranges import FRACTION, SEED, SHARE, Checked

TASK_DIR = Path("data") / "task1"
LANGUAGES = ("en", "fr", "de", "cs")


@dataclass(frozen=True)
class Flickr30kMultiConfig(Checked):
    data_dir: str = ""
    image_dir: str = ""  # default <data_dir>/images; relative paths are relative to data_dir
    languages: tuple[str, ...] = ("en", "fr")  # two or more distinct codes of LANGUAGES
    pairing: Literal["one", "all"] = "one"
    split: Literal["official", "group"] = "official"
    train_file: str = "train"
    val_file: str = "val"
    test_file: str = "test_2016_flickr"
    seed: Annotated[int, SEED] = 0
    train_frac: Annotated[float, FRACTION] = 0.70  # split="group" only; train_frac + val_frac < 1
    val_frac: Annotated[float, SHARE] = 0.15

    def check(self) -> None:
        check_fractions(self.train_frac, self.val_frac)
        bad = [lang for lang in self.languages if lang not in LANGUAGES]
        if len(set(self.languages)) < 2 or len(set(self.languages)) != len(self.languages) or bad:
            raise UserError(f"flickr30k-multi: languages must be two or more distinct codes of "
                            f"{', '.join(LANGUAGES)} (got {', '.join(self.languages) or 'none'})")


LABELS = (LabelSpec("language", "categorical", "caption", "language of the caption (§5, Table 2)"),)


def _read_lines(path: Path, opener=open) -> list[str]:
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _read_file_set(task: Path, name: str, languages: tuple[str, ...]) -> tuple[list[str], dict[str, list[str]]]:
    """The image names of ``image_splits/{name}.txt`` and, per language, the aligned captions."""
    listing = task / "image_splits" / f"{name}.txt"
    if not listing.is_file():
        raise UserError(f"flickr30k-multi: expected the image list {listing} (Multi30k layout "
                        "data/task1/image_splits/{file}.txt)")
    images = _read_lines(listing)
    captions = {}
    for lang in languages:
        path = task / "raw" / f"{name}.{lang}.gz"
        if not path.is_file():
            raise UserError(f"flickr30k-multi: expected the {lang} captions {path} (Multi30k layout "
                            "data/task1/raw/{file}.{lang}.gz)")
        captions[lang] = _read_lines(path, gzip.open)
        if len(captions[lang]) != len(images):
            raise UserError(f"flickr30k-multi: {path} has {len(captions[lang])} lines but {listing} lists "
                            f"{len(images)} images; the files must be line-aligned")
    return images, captions


def _image_dir(config: Flickr30kMultiConfig) -> Path:
    """``image_dir`` (default ``images``), a relative one taken relative to ``data_dir``."""
    image_dir = Path(config.image_dir).expanduser() if config.image_dir else Path("images")
    return image_dir if image_dir.is_absolute() else Path(config.data_dir).expanduser() / image_dir


def _image_root(config: Flickr30kMultiConfig) -> Path:
    image_dir = _image_dir(config)
    if not image_dir.is_dir():
        raise UserError(f"flickr30k-multi: expected the Flickr30k images in {image_dir} "
                        "(set image_dir to the folder holding e.g. 1000092795.jpg)")
    return image_dir


def _deal_languages(split: np.ndarray, languages: tuple[str, ...], seed: int) -> np.ndarray:
    """Per split (train, val, test in turn, one generator): shuffle the rows, deal languages in turn."""
    rng = np.random.default_rng(seed)
    dealt = np.empty(len(split), dtype=object)
    for name in SPLITS:
        rows = np.flatnonzero(split == name)
        order = rows[rng.permutation(len(rows))]
        dealt[order] = [languages[i % len(languages)] for i in range(len(order))]
    return dealt


@DATASETS.register("flickr30k-multi")
class Flickr30kMulti(Dataset):
    name = "flickr30k-multi"
    description = ("Flickr30K-Multi (Multi30k task 1): an image and its English or French caption; label = the "
                   "caption's language")
    Config = Flickr30kMultiConfig
    modalities = (Modality("image", "image"), Modality("caption", "text"))

    def manifest(self, config: Flickr30kMultiConfig) -> Manifest:
        if not config.data_dir:
            raise UserError("flickr30k-multi needs data_dir: a Multi30k checkout holding data/task1/")
        data_dir = Path(config.data_dir).expanduser()
        task = data_dir / TASK_DIR
        if not task.is_dir():
            raise UserError(f"flickr30k-multi: expected {TASK_DIR}/ in {data_dir} (a checkout of "
                            "github.com/multi30k/dataset)")
        languages = tuple(config.languages)
        files = {"train": config.train_file, "val": config.val_file, "test": config.test_file}
        if len(set(files.values())) != 3:
            raise UserError(f"flickr30k-multi: train_file, val_file and test_file must differ (got {files})")
        image_dir = _image_root(config)

        frames = []
        for official, name in files.items():
            images, captions = _read_file_set(task, name, languages)
            stems = [Path(image).stem for image in images]
            frame = pd.DataFrame({"source_file": name, "official": official, "image": images, "group": stems,
                                  "line": np.arange(len(images))})
            for lang in languages:
                frame[f"caption_{lang}"] = captions[lang]
            frames.append(frame)
        images = pd.concat(frames, ignore_index=True)

        present = {p.name for p in image_dir.iterdir()}
        has_image = images["image"].isin(present).to_numpy()
        if not has_image.any():
            raise UserError(f"flickr30k-multi: {image_dir} holds none of the {len(images)} listed images "
                            f"(e.g. {images['image'].iloc[0]})")

        fractions = fraction_label(config.train_frac, config.val_frac)
        if config.split == "official":
            overlap = images.groupby("group")["official"].nunique()
            if (overlap > 1).any():
                raise UserError(f"flickr30k-multi: image {overlap[overlap > 1].index[0]} is listed in more "
                                "than one of the official files; use split=group for an image-disjoint split")
            split = images["official"].to_numpy(dtype=object)
            protocol = f"official Multi30k files train={files['train']}, val={files['val']}, test={files['test']}"
        else:
            split = group_split(images["group"].to_numpy(), config.train_frac, config.val_frac, config.seed)
            protocol = (f"image-disjoint {fractions} over {'+'.join(files.values())}, seed {config.seed}")

        if config.pairing == "one":
            language = _deal_languages(split, languages, config.seed)
            rows = images.assign(split=split, language=language, has_image=has_image)
            protocol += f"; one caption per image, languages {'/'.join(languages)} dealt in turn, seed {config.seed}"
        else:
            rows = pd.concat([images.assign(split=split, language=lang, has_image=has_image) for lang in languages],
                             ignore_index=True)
            protocol += f"; every image once per language {'/'.join(languages)}"
        caption = np.empty(len(rows), dtype=object)
        for lang in languages:
            chosen = (rows["language"] == lang).to_numpy()
            caption[chosen] = rows.loc[chosen, f"caption_{lang}"].to_numpy()

        sample_id = rows["source_file"] + "/" + rows["group"] + "/" + rows["language"]
        repeated = sample_id.duplicated(keep=False)
        sample_id.loc[repeated] = sample_id[repeated] + "#" + rows.loc[repeated, "line"].astype(str)
        table = pd.DataFrame({
            "sample_id": sample_id.to_numpy(),
            "split": rows["split"].astype(str).to_numpy(),
            "group": rows["group"].to_numpy(),
            "language": rows["language"].astype(str).to_numpy(),
            "image_path": rows["image"].to_numpy(),  # relative to image_dir: moving the images is a no-op
            "caption": caption,
            "source_file": rows["source_file"].to_numpy(),
            "has_image": rows["has_image"].to_numpy(dtype=bool),
        })
        table = table.sort_values("sample_id", kind="stable").reset_index(drop=True)
        modalities = (Modality("image", "image", "image_path"), Modality("caption", "text", "caption"))
        return Manifest("flickr30k-multi", table, LABELS, modalities, protocol)

    def media_root(self, config: Flickr30kMultiConfig, modality: str) -> Path | None:
        return _image_dir(config) if modality == "image" else None

    def unusable_media(self, manifest: Manifest, modality: str) -> dict[int, str]:
        """Images listed by Multi30k but absent from ``image_dir`` (``has_image`` false)."""
        if modality != "image":
            return {}
        table = manifest.table
        return {row: f"missing: no {image} in image_dir" for row, (image, present)
                in enumerate(zip(table["image_path"], table["has_image"], strict=True)) if not present}
