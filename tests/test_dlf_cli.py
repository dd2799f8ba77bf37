"""`mmpipe fit dlf` and `mmpipe probe` end to end on the synthetic MOSI file in MMSA's aligned_50.pkl
layout (tests/affect_files.py): ingest, fit (three sequence inputs, language first), a published
run whose components are the checkpoint's, the probes of every component, and DLF's own
regression output scored on test with the MSA metrics as it is (no probe fitted on it)."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmpipe.adapters.checkpoint import load_model
from mmpipe.adapters.data import load_features
from mmpipe.adapters.methods.dlf import DLF
from mmpipe.adapters.predictions import PREDICTION, OwnPrediction
from mmpipe.evaluate import metrics
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.affect_files import write

runner = CliRunner()
INPUTS = ["--input", "text", "--input", "audio", "--input", "vision"]
FAST = ["--seeds", "0", "--set", "d_model=8", "--set", "heads=2", "--set", "layers=1", "--set", "memory_layers_self=1",
        "--set", "memory_layers_cross=1", "--set", "ortho_chunk=4", "--set", "minibatch_size=8", "--set",
        "accumulate=2", "--set", "max_epochs=2", "--set", "device=cpu"]


def _ok(store, *args):
    result = runner.invoke(app, ["--store", str(store), *args])
    assert result.exit_code == 0, (args, result.output)
    return result


def _rows(store, sql: str) -> list[list[str]]:
    return [line.split(",") for line in _ok(store, "query", "--format", "csv", sql).stdout.split("\n")[1:] if line]


def test_ingest_fit_and_probe_dlf_on_the_mosi_file(tmp_path):
    write("mmsa-aligned", tmp_path / "data", "mosi")
    store = tmp_path / "store"
    _ok(store, "ingest", "mosi", "--data-dir", str(tmp_path / "data"))
    fitted = _ok(store, "fit", "dlf", "--dataset", "mosi", *INPUTS, *FAST)
    [run] = Store.open(store).runs("dlf")
    assert fitted.stdout.split() == [run.run_id]
    record = run.record
    assert list(record.inputs) == ["text", "audio", "vision"] and record.ablation is None
    assert record.history["target"] == "sentiment" and record.history["lengths_from_padding_mismatch"] == 0
    assert run.component_names() == list(DLF.component_names(("text", "audio", "vision")))
    # the published components are the checkpoint's transform of the rows with their stored lengths
    data = load_features(Store.open(store), "mosi", {"text": None, "audio": None, "vision": None})
    expected = load_model(run).transform(data.values, {i.modality: i.lengths for i in data.inputs})
    stored = run.components()
    for name, values in expected.items():
        torch.testing.assert_close(stored[name], values, rtol=1e-5, atol=1e-5)

    _ok(store, "probe", run.run_id)
    components = {row[0] for row in _rows(store, f"SELECT DISTINCT component FROM probes WHERE run_id = '{run.run_id}'")}
    assert components == set(run.component_names())
    own = _rows(store, f"SELECT metric, value, protocol FROM probes WHERE run_id = '{run.run_id}' "
                       f"AND component = '{PREDICTION}' ORDER BY metric")
    assert {row[0] for row in own} == set(metrics.label_metrics("continuous", "sentiment"))
    assert all("the method's own prediction" in ",".join(row[2:]) for row in own)
    # scored as it is: the MAE of the stored prediction on the test rows, nothing fitted on top
    manifest = Store.open(store).manifest("mosi", record.manifest_version)
    test = (manifest.table["split"] == "test").to_numpy() & run.valid()
    y = manifest.table["sentiment"].to_numpy(dtype=float)[test]
    mae = float(np.abs(stored[PREDICTION].numpy()[test, 0] - y).mean())
    assert float(dict((row[0], row[1]) for row in own)["mae"]) == pytest.approx(mae, rel=1e-5)
    assert OwnPrediction.of(record.history).label == "sentiment"

    ablated = _ok(store, "fit", "dlf", "--dataset", "mosi", *INPUTS, *FAST, "--set", "lfa=false")
    [other] = [r for r in Store.open(store).runs("dlf") if r.run_id == ablated.stdout.split()[0]]
    assert other.record.ablation == "w/o LFA"
    refused = runner.invoke(app, ["--store", str(store), "fit", "dlf", "--dataset", "mosi", "--input", "text",
                                  "--input", "audio", *FAST])
    assert refused.exit_code != 0 and "dlf takes exactly 3 modalities, got 2" in refused.output
