"""Checks every registered dataset gets for free."""

import dataclasses

import pytest

from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.store.manifest import SPLITS

SMALL = {"n": 300}


def _small_config(cls):
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    return cls.Config(**{k: v for k, v in SMALL.items() if k in fields})


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_contract(name):
    cls = DATASETS.get(name)
    assert cls.name == name and cls.description
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    assert set(cls.modalities) == {"m1", "m2"}
    if not issubclass(cls, Simulation):
        pytest.skip("real datasets are exercised against their synthetic trees in their own tests")
    manifest, arrays = cls().generate(_small_config(cls))
    assert manifest.dataset == name and manifest.table["sample_id"].is_unique
    assert set(manifest.table["split"]) == set(SPLITS)
    assert manifest.split_protocol
    assert set(arrays) == {"m1", "m2"} and all(len(a) == len(manifest) for a in arrays.values())
    assert manifest.version() == cls().manifest(_small_config(cls)).version()
