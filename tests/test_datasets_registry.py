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
from mmpipe.pipeline.datasets.affect import AffectDataset
from mmpipe.store.manifest import OWNERS_BESIDE_MODALITIES, SPLITS, Modality, read_manifest, write_manifest
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
        rows.append({"sample_id": f"s{i:02d}", "photo": f"images/s{i:02d}.png", "audio": f"audio/s{i:02d}.wav",
                     "group": f"g{i // 2}", "mood": ["calm", "angry"][i % 2], "score": 0.5 * i})
    pd.DataFrame(rows).to_csv(root / "samples.csv", index=False)
    return {"data_dir": str(root), "modalities": ("photo:image", "audio:audio"),
            "labels": ("mood:categorical:shared", "score:continuous:audio")}


def _hf_tree(root: Path) -> dict:
    """An imagefolder with a metadata.csv (captions, labels, speakers), read by `datasets` itself."""
    rows = []
    for i in range(12):
        write_image(root / f"s{i:02d}.png", seed=i)
        rows.append({"file_name": f"s{i:02d}.png", "caption": f"photo number {i}", "mood": ["calm", "angry"][i % 2],
                     "speaker": f"g{i // 2}"})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return {"path": str(root), "loader": "imagefolder", "m1": "image", "m2": "caption", "labels": ("mood",),
            "group": "speaker"}


TREES: dict[str, Callable[[Path], dict]] = {"cremad": _cremad_tree, "flickr30k-multi": _multi30k_tree,
                                            "folder": _folder_tree, "hf": _hf_tree}
# datasets whose modalities come from the config: the ones their tree's config names
CONFIGURED_MODALITIES = {"folder": (Modality("photo", "image"), Modality("audio", "audio"))}


def _check_owners(manifest):
    """Every label is owned by shared, joint or one of the dataset's modalities (by name)."""
    owners = {*OWNERS_BESIDE_MODALITIES, *manifest.modality_names}
    assert all(label.owner in owners for label in manifest.labels), [(s.name, s.owner) for s in manifest.labels]


def _small_config(cls):
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    return cls.Config(**{k: v for k, v in SMALL.items() if k in fields})


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_contract(name):
    cls = DATASETS.get(name)
    assert cls.name == name and cls.description
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    cls.Config()  # every field has a default
    assert cls.modalities and all(isinstance(m, Modality) and m.column is None for m in cls.modalities)
    assert len({m.name for m in cls.modalities}) == len(cls.modalities)
    if not issubclass(cls, Simulation):
        pytest.skip("real datasets are checked against their synthetic trees below (ingested ones in test_ingest.py)")
    manifest, arrays = cls().generate(_small_config(cls))
    assert manifest.dataset == name and manifest.table["sample_id"].is_unique
    assert set(manifest.table["split"]) == set(SPLITS)
    assert manifest.split_protocol
    assert manifest.modalities == cls.modalities and all(m.kind == "features" for m in cls.modalities)
    assert list(arrays) == list(manifest.modality_names) and all(len(a) == len(manifest) for a in arrays.values())
    _check_owners(manifest)
    assert manifest.version() == cls().manifest(_small_config(cls)).version()


MEDIA_DATASETS = [n for n in DATASETS.names() if not issubclass(DATASETS.get(n), (Simulation, AffectDataset))]


def test_every_dataset_is_checked_here_or_as_an_ingested_one():
    """Datasets read from feature files (mmpipe ingest) have their contract test in tests/test_ingest.py."""
    ingested = [n for n in DATASETS.names() if issubclass(DATASETS.get(n), AffectDataset)]
    simulated = [n for n in DATASETS.names() if issubclass(DATASETS.get(n), Simulation)]
    assert sorted(MEDIA_DATASETS + ingested + simulated) == DATASETS.names()


@pytest.mark.parametrize("name", MEDIA_DATASETS)
def test_real_dataset_against_its_synthetic_tree(name, tmp_path):
    assert name in TREES, f"add a synthetic tree builder for {name!r} to TREES"
    cls = DATASETS.get(name)
    config = cls.Config(**TREES[name](tmp_path / "data"))
    manifest = cls().manifest(config)
    table = manifest.table
    assert manifest.dataset == name and table["sample_id"].is_unique and len(table) > 0
    assert set(table["split"]) == set(SPLITS) and manifest.split_protocol
    declared = CONFIGURED_MODALITIES.get(name, cls.modalities)
    assert [(m.name, m.kind) for m in manifest.modalities] == [(m.name, m.kind) for m in declared]
    _check_owners(manifest)
    for modality in manifest.modalities:
        assert modality.column is not None, f"{name} {modality.name}: a real dataset's modality has media"
        values = table[modality.column]
        assert values.map(lambda v: isinstance(v, str) and v != "").all()
        if modality.kind not in TEXT_MODALITIES:  # relative media paths resolve against the media root
            root = cls().media_root(config, modality.name)
            assert root is not None and all(not Path(v).is_absolute() and (root / v).is_file() for v in values), \
                f"{name} {modality.name}"
            assert cls().unusable_media(manifest, modality.name) == {}  # a complete, healthy tree
    for label in manifest.labels:
        assert table[label.name].notna().all(), f"{name}: label {label.name} has missing values"
    # the default split never lets a group span splits
    assert table.groupby("group")["split"].nunique().max() == 1
    assert cls().manifest(config).version() == manifest.version()
    write_manifest(tmp_path / "m.parquet", manifest)
    assert read_manifest(tmp_path / "m.parquet").version() == manifest.version()
