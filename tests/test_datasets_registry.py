"""Checks every registered dataset gets for free.

Simulations are generated small; every other dataset is built from a synthetic tree laid out like
its real download (``TREES``: dataset name -> builder writing the tree and returning the config
overrides). A real dataset without a builder fails here, so each new one gets the same checks.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.store.manifest import SPLITS, read_manifest, write_manifest
from tests.media import write_image, write_wav
from tests.synthetic_trees import cremad_subset, make_cremad_tree, make_multi30k_tree

SMALL = {"n": 300}
TEXT_MODALITIES = {"text"}


def _cremad_tree(root: Path) -> dict:
    make_cremad_tree(root, cremad_subset(actors=4, per_actor=3), max_seconds=0.2, video_frames=2)
    return {"data_dir": str(root)}


def _multi30k_tree(root: Path) -> dict:
    make_multi30k_tree(root, {"train": 6, "val": 2, "test_2016_flickr": 2})
    return {"data_dir": str(root)}


def _folder_tree(root: Path) -> dict:
    rows = []
    for i in range(12):
        write_image(root / "images" / f"s{i:02d}.png", seed=i)
        write_wav(root / "audio" / f"s{i:02d}.wav", 0.2, seed=i)
        rows.append({"sample_id": f"s{i:02d}", "m1": f"images/s{i:02d}.png", "m2": f"audio/s{i:02d}.wav",
                     "group": f"g{i // 2}", "mood": ["calm", "angry"][i % 2], "score": 0.5 * i})
    pd.DataFrame(rows).to_csv(root / "samples.csv", index=False)
    return {"data_dir": str(root), "m1_kind": "image", "labels": ("mood:categorical:shared", "score:continuous:m2")}


TREES: dict[str, Callable[[Path], dict]] = {"cremad": _cremad_tree, "flickr30k-multi": _multi30k_tree,
                                            "folder": _folder_tree}


def _small_config(cls):
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    return cls.Config(**{k: v for k, v in SMALL.items() if k in fields})


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_contract(name):
    cls = DATASETS.get(name)
    assert cls.name == name and cls.description
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    cls.Config()  # every field has a default
    assert set(cls.modalities) == {"m1", "m2"}
    if not issubclass(cls, Simulation):
        pytest.skip("real datasets are checked against their synthetic trees below")
    manifest, arrays = cls().generate(_small_config(cls))
    assert manifest.dataset == name and manifest.table["sample_id"].is_unique
    assert set(manifest.table["split"]) == set(SPLITS)
    assert manifest.split_protocol
    assert set(arrays) == {"m1", "m2"} and all(len(a) == len(manifest) for a in arrays.values())
    assert manifest.version() == cls().manifest(_small_config(cls)).version()


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if not issubclass(DATASETS.get(n), Simulation)])
def test_real_dataset_against_its_synthetic_tree(name, tmp_path):
    assert name in TREES, f"add a synthetic tree builder for {name!r} to TREES"
    cls = DATASETS.get(name)
    config = cls.Config(**TREES[name](tmp_path / "data"))
    manifest = cls().manifest(config)
    table = manifest.table
    assert manifest.dataset == name and table["sample_id"].is_unique and len(table) > 0
    assert set(table["split"]) == set(SPLITS) and manifest.split_protocol
    assert set(manifest.modalities) == {"m1", "m2"}
    for modality, column in manifest.modalities.items():
        values = table[column]
        assert values.map(lambda v: isinstance(v, str) and v != "").all()
        if cls.modalities[modality] not in TEXT_MODALITIES:  # relative media paths resolve against the media root
            root = cls().media_root(config, modality)
            assert root is not None and all(not Path(v).is_absolute() and (root / v).is_file() for v in values), \
                f"{name} {modality}"
            assert cls().unusable_media(manifest, modality) == {}  # a complete, healthy tree
    for label in manifest.labels:
        assert table[label.name].notna().all(), f"{name}: label {label.name} has missing values"
    # the default split never lets a group span splits
    assert table.groupby("group")["split"].nunique().max() == 1
    assert cls().manifest(config).version() == manifest.version()
    write_manifest(tmp_path / "m.parquet", manifest)
    assert read_manifest(tmp_path / "m.parquet").version() == manifest.version()
