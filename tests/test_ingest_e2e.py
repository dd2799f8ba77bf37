"""Issue 14 point 5 end to end: each affect dataset's synthetic public file is ingested, and the
pooled-input methods run on its sequence entries through their pooled view (mean over the valid
steps, ``--pool mean``): MultiLoReFT on two modalities and late fusion on all three, then every
component is probed and the label's scores land in the results DB."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.affect_files import write

runner = CliRunner()
SHORT = ["--seeds", "0", "--set", "minibatch_size=16"]
MULTILOREFT = [*SHORT, "--set", "max_epochs_shared=2", "--set", "max_epochs_private=2", "--set", "max_epochs_joint=2"]
LATE_FUSION = [*SHORT, "--set", "max_epochs=3", "--set", "size=input", "--set", "hidden=8"]
CASES = [("mosi", "multibench", "sentiment"), ("mosei", "mmsa-aligned", "sentiment"),
         ("urfunny", "multibench", "humor"), ("mustard", "multibench", "sarcasm")]


def _ok(store, *args):
    result = runner.invoke(app, ["--store", str(store), *args])
    assert result.exit_code == 0, (args, result.output)
    return result


def _scores(store, run_id: str) -> set[tuple[str, str]]:
    result = _ok(store, "query", "--format", "csv",
                 f"SELECT DISTINCT component, label FROM probes WHERE run_id = '{run_id}' ORDER BY ALL")
    return {tuple(line.split(",")) for line in result.stdout.split()[1:]}


@pytest.mark.parametrize("dataset, kind, label", CASES)
def test_ingest_fit_and_probe(tmp_path, dataset, kind, label):
    write(kind, tmp_path / "data", dataset)
    store = tmp_path / "store"
    _ok(store, "ingest", dataset, "--data-dir", str(tmp_path / "data"))
    fitted = _ok(store, "fit", "late-fusion", "--dataset", dataset, "--input", "text", "--input", "audio",
                 "--input", "vision", "--pool", "mean", *LATE_FUSION)
    runs = [r for r in Store.open(store).runs("late-fusion")]
    assert [r.run_id for r in runs] == fitted.stdout.split()
    record = runs[0].record
    assert record.pooling == {"text": "mean", "audio": "mean", "vision": "mean"}
    assert set(record.inputs.values()) == {e.name for e in Store.open(store).feature_entries()}
    if dataset == "mosi":  # a two-modality method on two of the three
        fitted = _ok(store, "fit", "multiloreft", "--dataset", dataset, "--input", "text", "--input", "audio",
                     "--pool", "mean", *MULTILOREFT)
        runs += Store.open(store).runs("multiloreft")
    _ok(store, "probe", *[r.run_id for r in runs])
    for run in runs:
        scored = _scores(store, run.run_id)
        assert {c for c, _ in scored} == set(run.component_names())
        assert {lab for _, lab in scored} == {label}
