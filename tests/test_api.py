"""The Python API (`import mmpipe`): the example script runs end to end, and each call returns
what the store holds (checked against the store's own readers, not against fixed numbers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mmpipe
from mmpipe.adapters.pooling import pool

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "quickstart.py"


@pytest.fixture(scope="module")
def example_store(tmp_path_factory):
    """The store the example script fills: sim1 (n=1000), two MultiLoReFT runs, their probe scores."""
    root = tmp_path_factory.mktemp("api") / "store"
    done = subprocess.run([sys.executable, str(EXAMPLE), str(root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "z_s from the checkpoint equals the stored z_s: True" in done.stdout
    return mmpipe.open_store(root), done.stdout


def test_the_example_runs_and_prints_its_scores(example_store):
    store, stdout = example_store
    assert "multiloreft-" in stdout and "y_s" in stdout
    assert len(mmpipe.list_runs(store, "multiloreft")) == 2


def test_import_mmpipe_is_light():
    code = "import sys, mmpipe; assert 'torch' not in sys.modules, 'torch'; print(sorted(mmpipe.__all__))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in ("open_store", "load_features", "fit", "load_components", "load_adapter", "probe", "results"):
        assert name in done.stdout


def test_every_exported_name_resolves_and_unknown_names_raise():
    for name in mmpipe.__all__:
        assert getattr(mmpipe, name) is not None
    with pytest.raises(AttributeError):
        mmpipe.no_such_thing  # noqa: B018


def test_open_store_refuses_a_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(mmpipe.UserError, match="not an mmpipe store"):
        mmpipe.open_store(tmp_path)
    with pytest.raises(mmpipe.UserError, match="no mmpipe store"):
        mmpipe.open_store(tmp_path / "missing")


def test_features_are_the_stored_rows_of_the_split_with_their_manifest_rows(example_store):
    store, _ = example_store
    listing = mmpipe.list_features(store, "sim1")
    assert set(listing["name"]) == {"sim1.m1.simulated", "sim1.m2.simulated"}
    entry = store.features("sim1.m1.simulated")
    manifest = store.manifest("sim1", entry.meta["manifest_version"])
    for split in ("train", "val", "test"):
        got = mmpipe.load_features(store, "sim1.m1.simulated", split=split)
        mask = manifest.split_mask(split)
        assert torch.equal(got.values, entry.load(rows=torch.from_numpy(mask.nonzero()[0])).float())
        assert got.rows["sample_id"].tolist() == manifest.table.loc[mask, "sample_id"].tolist()
        assert set(got.rows["split"]) == {split}
        assert got.lengths is None and bool(got.valid.all())
    every = mmpipe.load_features(store, "sim1.m1.simulated")
    assert len(every.rows) == len(manifest) and np.array_equal(every.numpy(), entry.load().float().numpy())
    table = every.to_pandas()
    assert {"sample_id", "split", "y_s", "valid", "f0", f"f{entry.dim - 1}"} <= set(table.columns)
    assert np.array_equal(table[[f"f{i}" for i in range(entry.dim)]].to_numpy(), every.numpy())


def test_feature_refusals_are_user_errors(example_store):
    store, _ = example_store
    with pytest.raises(mmpipe.UserError, match="split must be one of"):
        mmpipe.load_features(store, "sim1.m1.simulated", split="dev")
    with pytest.raises(mmpipe.UserError, match="sequence entries"):
        mmpipe.load_features(store, "sim1.m1.simulated", pooling="mean")
    with pytest.raises(mmpipe.UserError, match="no features named"):
        mmpipe.load_features(store, "sim1.m3.simulated")
    with pytest.raises(mmpipe.UserError, match="not a simulation"):
        mmpipe.simulate(store, "folder")


def test_sequence_features_come_with_lengths_and_pool_over_valid_steps(tmp_path):
    store = mmpipe.open_store(tmp_path / "store", create=True)
    names = mmpipe.simulate(store, "simseq", n=120, seed=1)
    name = next(n for n in names if ".audio." in n)
    seq = mmpipe.load_features(store, name, split="val")
    assert seq.values.ndim == 3 and seq.lengths is not None and len(seq.lengths) == len(seq.rows)
    assert int(seq.lengths.max()) <= seq.values.shape[1]
    mean = mmpipe.load_features(store, name, split="val", pooling="mean")
    assert torch.allclose(mean.values, pool(seq.values, seq.lengths.clamp_min(1), "mean"))
    steps = seq.to_pandas()
    assert [len(f) for f in steps["features"]] == seq.lengths.tolist()


def test_fit_again_finds_the_published_runs(example_store):
    store, _ = example_store
    before = mmpipe.list_runs(store)
    capped = {"max_epochs_shared": 5, "max_epochs_private": 5, "max_epochs_joint": 10, "device": "cpu"}
    again = mmpipe.fit(store, "multiloreft", "sim1", ["m1", "m2"], seeds=[1, 0], config=capped)
    assert [r.record.seed for r in again] == [1, 0]
    assert {r.run_id for r in again} == set(before["run_id"])
    with pytest.raises(mmpipe.UserError, match="unknown config key"):
        mmpipe.fit(store, "multiloreft", "sim1", seeds=[0], config={"no_such_field": 1})
    with pytest.raises(mmpipe.UserError, match="distinct"):
        mmpipe.fit(store, "multiloreft", "sim1", seeds=[0, 0], config=capped)


def test_components_of_a_split_are_the_stored_rows(example_store):
    store, _ = example_store
    run = store.runs("multiloreft")[0]
    stored = run.components()
    manifest = store.manifest("sim1", run.record.manifest_version)
    test = mmpipe.load_components(store, run.run_id, split="test")
    mask = manifest.split_mask("test")
    assert list(test.values) == run.record.components
    for name, values in test.values.items():
        assert torch.equal(values, stored[name][torch.from_numpy(mask.nonzero()[0])])
    assert test.rows["sample_id"].tolist() == manifest.table.loc[mask, "sample_id"].tolist()
    only = mmpipe.load_components(store, run, names=["z_s"])
    assert list(only.values) == ["z_s"] and len(only.rows) == len(manifest)
    table = test.to_pandas()
    assert {"sample_id", "y_s", "valid", "z_s_0"} <= set(table.columns)
    with pytest.raises(mmpipe.UserError, match="no component"):
        mmpipe.load_components(store, run, names=["z_nope"])


def test_the_loaded_adapter_reproduces_every_stored_component(example_store):
    store, _ = example_store
    run = store.runs("multiloreft")[0]
    model = mmpipe.load_adapter(store, run.run_id)
    inputs = {m: mmpipe.load_features(store, name).values for m, name in run.record.inputs.items()}
    with torch.no_grad():
        got = model.transform(inputs)
    for name, values in run.components().items():
        assert torch.allclose(got[name], values, atol=1e-5), name


def test_probe_returns_the_scores_it_saves_and_results_reads_them(example_store):
    store, _ = example_store
    run = store.runs("multiloreft")[0]
    saved = mmpipe.results(store)
    assert {"method", "variant", "seed", "component", "label", "metric", "value", "protocol"} <= set(saved.columns)
    fresh = mmpipe.probe(store, run.run_id, labels=["y_s"], components=["z_s"], save=False)
    assert set(fresh["component"]) == {"z_s"} and set(fresh["label"]) == {"y_s"}
    mine = saved[(saved["run_id"] == run.run_id) & (saved["component"] == "z_s") & (saved["label"] == "y_s")]
    merged = fresh.merge(mine, on=["metric"], suffixes=("", "_db"))
    assert len(merged) == len(fresh) and np.allclose(merged["value"], merged["value_db"])
    assert mmpipe.results(store).equals(saved)  # save=False wrote nothing
    with pytest.raises(mmpipe.UserError):
        mmpipe.results(store, "DELETE FROM probes")
