"""`mmpipe fit` end to end, and its bad-input errors."""

import numpy as np
import pytest
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
    assert len(runs) == 2 and {r.record["seed"] for r in runs} == {0, 1}
    run = runs[0]
    assert set(run.component_names()) == {"z_s1", "z_s2", "z_m1", "z_m2", "phi1", "phi2", "z_s", "fused"}
    assert run.components(["phi1"])["phi1"].shape == (300, 10)
    for field in ("config", "ranks", "stage_history", "rank_history", "timings", "n_params", "code_version",
                  "started_at", "seconds"):
        assert field in run.record
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
    assert run.record["config"]["prune"] is False and run.record["config"]["temperature"] == 0.2
    assert run.record["ablation"] == "no pruning"


@pytest.mark.parametrize("args, message", [
    (["--set", "bogus=1"], "unknown config key 'bogus'; valid: "),
    (["--seeds", "0,x"], "--seeds must be comma-separated integers"),
    (["--m1", "nope", "--m2", "m2"], "no cached features sim1.nope"),
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
    assert result.exit_code == 2 and "needs --m1 and --m2" in result.output


def test_nan_features_name_rows_and_split(sim_root):
    store = Store.open(sim_root)
    entry = store.features("sim1.m1")
    splits = store.manifest("sim1").table["split"].to_numpy()
    array = zarr.open_group(entry.path, mode="r+")["data"]
    bad_rows = np.flatnonzero(splits == "val")[:3]
    values = array[...]
    values[bad_rows, 0] = np.nan
    array[...] = values
    result = _fit(sim_root, "--seeds", "0")
    assert result.exit_code == 2
    assert "sim1.m1: 3 val rows contain NaN or Inf" in result.output
    assert store.runs() == []


def test_modalities_with_different_sample_counts(sim_root):
    store = Store.open(sim_root)
    version = store.manifest("sim1").version()
    with store.writer("sim1.short", {"x": 1}, n_rows=299, dim=10) as writer:
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            writer.write_chunk(index, np.zeros((stop - start, 10)))
        writer.publish({"dataset": "sim1", "manifest_version": version})
    result = _fit(sim_root, "--m1", "m1", "--m2", "short")
    assert result.exit_code == 2 and "sim1.short has 299 rows but the sim1 manifest has 300" in result.output


def test_minibatch_size_is_part_of_the_run_key(sim_root):
    assert _fit(sim_root, "--seeds", "0").exit_code == 0
    assert _fit(sim_root, "--seeds", "0", "--set", "minibatch_size=32").exit_code == 0
    runs = Store.open(sim_root).runs("multiloreft")
    assert sorted(r.record["config"]["minibatch_size"] for r in runs) == [32, 64]
