"""Manifest build time on full-size directory trees (run on demand).

    PYTHONPATH=. python tests/benchmarks/bench_datasets.py [--repeats 5]

CREMA-D: all 7,442 real clip names as placeholder files (2 KiB each; the manifest reads names,
sizes and the demographics, never the media) + the real VideoDemographics.csv. Multi30k: 29,000 /
1,014 / 1,000 images in train / val / test_2016_flickr with en+fr captions and placeholder images.
Prints the median wall time of ``manifest()`` for each.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
from pathlib import Path

from timing import median_seconds  # tests/benchmarks/timing.py (the script's folder)

from mmpipe.pipeline.datasets.cremad import Cremad, CremadConfig
from mmpipe.pipeline.datasets.flickr30k_multi import Flickr30kMulti, Flickr30kMultiConfig
from tests.synthetic_trees import cremad_clip_names, cremad_meta_dir

PLACEHOLDER = b"\0" * 2048



def cremad_tree(root: Path) -> None:
    for folder, suffix in (("AudioWAV", ".wav"), ("VideoFlash", ".flv")):
        (root / folder).mkdir(parents=True)
        for clip in cremad_clip_names():
            (root / folder / f"{clip}{suffix}").write_bytes(PLACEHOLDER)
    shutil.copyfile(cremad_meta_dir() / "VideoDemographics.csv", root / "VideoDemographics.csv")


def multi30k_tree(root: Path) -> None:
    task, images = root / "data" / "task1", root / "images"
    (task / "image_splits").mkdir(parents=True)
    (task / "raw").mkdir()
    images.mkdir()
    start = 1_000_000
    for name, count in (("train", 29_000), ("val", 1_014), ("test_2016_flickr", 1_000)):
        names = [f"{start + i}.jpg" for i in range(count)]
        start += count
        (task / "image_splits" / f"{name}.txt").write_text("".join(f"{n}\n" for n in names))
        for lang in ("en", "fr"):
            with gzip.open(task / "raw" / f"{name}.{lang}.gz", "wt", encoding="utf-8") as handle:
                handle.writelines(f"caption {lang} {i}\n" for i in range(count))
        for n in names:
            (images / n).write_bytes(PLACEHOLDER)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cremad_tree(root / "crema-d")
        config = CremadConfig(data_dir=str(root / "crema-d"))
        rows = len(Cremad().manifest(config))
        seconds = median_seconds(lambda: Cremad().manifest(config), args.repeats)
        print(f"cremad manifest: {rows} rows in {seconds:.3f} s (median of {args.repeats})")
        multi30k_tree(root / "multi30k")
        fconfig = Flickr30kMultiConfig(data_dir=str(root / "multi30k"))
        rows = len(Flickr30kMulti().manifest(fconfig))
        seconds = median_seconds(lambda: Flickr30kMulti().manifest(fconfig), args.repeats)
        print(f"flickr30k-multi manifest: {rows} rows in {seconds:.3f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
