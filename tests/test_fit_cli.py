"""`mmpipe fit` end to end, and its bad-input errors."""

import numpy as np
import pytest
import torch
import zarr
from typer.testing import CliRunner

from mmpipe.adapters import METHODS
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store

runner = CliRunner()
FAST = ["--set", "max_epochs_shared=3", "--set", "max_epochs_private=3", "--set", "max_epochs_joint=4",
        "--set", "minibatch_size=64", "--set", "hidden=8"]


@pytest.fixture
def sim_root(tmp_path):
    root = tmp_path / "s"
    assert runner.invoke(app, ["--store", str(root), "simulate", "sim1", "--n", "300"]).exit_code == 0
    return root


def _fit(root, *args):
    return runner.invoke(app, ["--store", str(root), "fit", "multiloreft", "--dataset", "sim1", *FAST, *args])


def test_fit_end_to_end_then_noop(sim_root):
    result = _fit(sim_root, "--seeds", "0,1")
    assert result.exit_code == 0, result.output
    runs = Store.open(sim_root).runs("multiloreft")
    assert len(runs) == 2 and {r.record.seed for r in runs} == {0, 1}
    run = runs[0]
    assert set(run.component_names()) == {"z_s_m1", "z_s_m2", "z_m1", "z_m2", "phi_m1", "phi_m2", "z_s", "fused"}
    assert run.components(["phi_m1"])["phi_m1"].shape == (300, 10)
    record = run.record
    assert record.inputs == {"m1": "sim1.m1.simulated", "m2": "sim1.m2.simulated"}
    assert record.ranks and record.n_params > 0 and record.code_version and record.started_at and record.seconds > 0
    assert {"stage_history", "rank_history"} <= set(record.history) and "train_s" in record.timings
    assert (run.path / "checkpoint.safetensors").exists()
    info = runner.invoke(app, ["--store", str(sim_root), "info"])
    assert info.exit_code == 0 and "adapter runs" in info.output and run.run_id[:12] in info.output
    again = _fit(sim_root, "--seeds", "0,1")
    assert again.exit_code == 0 and again.output.count("already fitted, nothing to do") == 2
    assert len(Store.open(sim_root).runs("multiloreft")) == 2


def test_config_file_and_overrides_change_the_run(sim_root, tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"prune": false, "temperature": 0.2}')
    assert _fit(sim_root, "--seeds", "0", "--config", str(config)).exit_code == 0
    [run] = Store.open(sim_root).runs("multiloreft")
    assert run.record.config["prune"] is False and run.record.config["temperature"] == 0.2
    assert run.record.ablation == "no pruning"
    settings = run.record.settings
    assert settings["temperature"] == 0.2 and settings["projection_weight_decay"] == 0.01  # sim1's data default
    assert "prune" not in settings  # an ablation switch is named by the ablation, not the settings


@pytest.mark.parametrize("args, message", [
    (["--set", "bogus=1"], "unknown config key 'bogus'; valid: "),
    (["--seeds", "0,x"], "--seeds must be comma-separated integers"),
    (["--m1", "nope", "--m2", "simulated"], "no cached nope features of sim1 m1"),
    (["--input", "m1", "--input", "m9"], "dataset sim1 has no modality 'm9'; valid: m1, m2"),
    (["--input", "m1"], "multiloreft takes exactly 2 modalities, got 1 (m1)"),
    (["--input", "m1", "--m1", "simulated"], "give --input or --m1/--m2, not both"),
    (["--input", "m1=", "--input", "m2"], "--input 'm1=' must be MODALITY=FEATURE or MODALITY"),
])
def test_bad_input_exits_2(sim_root, args, message):
    result = _fit(sim_root, *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_unknown_method_and_missing_data(tmp_path, sim_root):
    result = runner.invoke(app, ["--store", str(sim_root), "fit", "nosuch", "--dataset", "sim1"])
    assert result.exit_code == 2 and f"unknown method 'nosuch'; valid: {', '.join(METHODS.names())}" in result.output
    result = runner.invoke(app, ["--store", str(sim_root), "fit", "multiloreft", "--dataset", "sim2"])
    assert result.exit_code == 2 and "create it with `mmpipe simulate sim2`" in result.output
    result = runner.invoke(app, ["--store", str(sim_root), "fit", "multiloreft", "--dataset", "cremad"])
    assert result.exit_code == 2 and "the store holds no cremad data" in result.output


def test_nan_features_name_rows_and_split(sim_root):
    store = Store.open(sim_root)
    entry = store.features("sim1.m1.simulated")
    splits = store.manifest("sim1").table["split"].to_numpy()
    array = zarr.open_group(entry.path, mode="r+")["data"]
    bad_rows = np.flatnonzero(splits == "val")[:3]
    values = array[...]
    values[bad_rows, 0] = np.nan
    array[...] = values
    result = _fit(sim_root, "--seeds", "0")
    assert result.exit_code == 2
    assert "sim1.m1.simulated: 3 valid val rows hold NaN or Inf" in result.output and "is damaged" in result.output
    assert store.runs() == []


def _extra_entry(store: Store, modality: str, feature: str, n_rows: int) -> None:
    version = store.manifest("sim1").version()
    with store.writer(f"sim1.{modality}.{feature}", {"modality": modality, "x": 1}, n_rows=n_rows, dim=10) as writer:
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            writer.write_chunk(index, np.random.default_rng(index).normal(size=(stop - start, 10)))
        writer.publish({"dataset": "sim1", "manifest_version": version})


def test_modalities_with_different_sample_counts(sim_root):
    _extra_entry(Store.open(sim_root), "m2", "short", 299)
    result = _fit(sim_root, "--m1", "simulated", "--m2", "short")
    assert result.exit_code == 2 and "sim1.m2.short has 299 rows but the sim1 manifest has 300" in result.output


def test_a_feature_of_one_modality_is_refused_for_another(sim_root):
    """The CREMA-D bug of issue #11: audio features given as video silently misassigned every Δ."""
    store = Store.open(sim_root)
    _extra_entry(store, "m2", "other", 300)
    for args in (["--input", "m1=other", "--input", "m2"], ["--m1", "other", "--m2", "simulated"]):
        result = _fit(sim_root, *args)
        assert result.exit_code == 2, result.output
        assert "other features of sim1 were extracted from m2, not m1" in result.output
        assert "Traceback" not in result.output
    assert store.runs() == []
    result = _fit(sim_root, "--seeds", "0")
    assert result.exit_code == 2 and "sim1 m2 has several features (other, simulated)" in result.output


def test_input_order_is_the_order_the_method_sees(sim_root):
    assert _fit(sim_root, "--seeds", "0", "--input", "m2", "--input", "m1").exit_code == 0
    [run] = Store.open(sim_root).runs("multiloreft")
    assert list(run.record.inputs) == ["m2", "m1"]
    assert run.record.dims == {"m2": 10, "m1": 10}


def test_data_defaults_apply_to_fit_and_an_explicit_set_wins(tmp_path):
    root = tmp_path / "s2"
    assert runner.invoke(app, ["--store", str(root), "simulate", "sim2", "--n", "300"]).exit_code == 0
    assert runner.invoke(app, ["--store", str(root), "fit", "multiloreft", "--dataset", "sim2", "--seeds", "0",
                               *FAST]).exit_code == 0
    assert runner.invoke(app, ["--store", str(root), "fit", "multiloreft", "--dataset", "sim2", "--seeds", "0",
                               *FAST, "--set", "projection_weight_decay=0.001"]).exit_code == 0
    decays = sorted(r.record.config["projection_weight_decay"] for r in Store.open(root).runs("multiloreft"))
    assert decays == [0.001, 0.3]
    shown = {r.record.config["projection_weight_decay"]: r.record.settings for r in Store.open(root).runs()}
    assert shown[0.3]["projection_weight_decay"] == 0.3 and "projection_weight_decay" not in shown[0.001]


def test_minibatch_size_is_part_of_the_run_key(sim_root):
    assert _fit(sim_root, "--seeds", "0").exit_code == 0
    assert _fit(sim_root, "--seeds", "0", "--set", "minibatch_size=32").exit_code == 0
    runs = Store.open(sim_root).runs("multiloreft")
    assert sorted(r.record.config["minibatch_size"] for r in runs) == [32, 64]


def _sequence_copy_of_m2(store: Store) -> None:
    """sim1's m2 features as a (T=3, D) sequence entry: each row's x repeated over 1 or 2 valid
    steps, so mean pooling gives x back exactly (x + x = 2x and 2x / 2 = x in floating point)."""
    simulated = store.features("sim1.m2.simulated")
    x = simulated.load().numpy()  # (N, D) float32
    lengths = np.random.default_rng(0).integers(1, 3, size=len(x))
    with store.writer("sim1.m2.seq", {"modality": "m2", "copy": "repeat"}, n_rows=len(x), dim=x.shape[1], steps=3,
                      dtype="float32") as writer:
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            rows = np.repeat(x[start:stop, None, :], 3, axis=1)  # steps past a row's length are zeroed by the writer
            writer.write_chunk(index, rows, lengths=lengths[start:stop])
        writer.publish({"dataset": "sim1", "manifest_version": simulated.meta["manifest_version"]})


def test_sequence_inputs_are_mean_pooled_by_default_and_exactly(sim_root):
    store = Store.open(sim_root)
    _sequence_copy_of_m2(store)
    args = ["--seeds", "0", "--input", "m1", "--input", "m2=seq"]
    assert _fit(sim_root, *args).exit_code == 0
    again = _fit(sim_root, *args, "--pool", "mean")  # the default, said: the same run
    assert again.exit_code == 0 and "already" in again.output
    assert _fit(sim_root, "--seeds", "0", "--input", "m1", "--input", "m2=simulated").exit_code == 0
    runs = {tuple(r.record.pooling.items()): r for r in Store.open(sim_root).runs("multiloreft")}
    pooled, plain = runs[(("m2", "mean"),)], runs[()]
    assert pooled.record.inputs["m2"] == "sim1.m2.seq" and pooled.fingerprint != plain.fingerprint
    for name, values in plain.components().items():  # mean pooling recovered the pooled features bit for bit
        assert torch.equal(pooled.components([name])[name], values), name
    bad = _fit(sim_root, *args, "--pool", "max")
    assert bad.exit_code == 2 and "pooling must be one of mean, last, not 'max'" in bad.output
