"""Three modalities end to end (issue #11): a folder dataset with video, audio and text columns is
extracted into three entries, fitted with late fusion and cross-attention over all three inputs,
probed and reported; a two-modality method given three is refused in one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.synthetic_trees import make_three_modality_tree
from tests.tiny_models import tiny_weights  # noqa: F401

runner = CliRunner()
MODALITIES = "modalities=video:video,audio:audio,text:text"
LABELS = "labels=mood:categorical:joint,topic:categorical:text"  # mood: the fusion target
FIT = ["--seeds", "0,1", "--set", "size=input", "--set", "max_epochs=3",
       "--set", "minibatch_size=8", "--set", "hidden=8"]


def _invoke(store, *args):
    result = runner.invoke(app, ["--store", str(store), *args])
    return result


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, tiny_weights):  # noqa: F811
    root = tmp_path_factory.mktemp("three")
    data, store = make_three_modality_tree(root / "data", n=24), root / "store"
    for encoder in ("r3d18", "wavlm", "bert"):
        result = _invoke(store, "extract", "folder", "--encoder", encoder, "--data-dir", str(data), "--weights",
                         str(tiny_weights(encoder)), "--set", MODALITIES, "--set", LABELS, "--workers", "0",
                         "--batch-size", "8", "--dtype", "float32")
        assert result.exit_code == 0, result.output
    return store


@pytest.mark.parametrize("method, component", [("late-fusion", "e_text"), ("cross-attention", "u_text")])
def test_fit_probe_and_report_over_three_inputs(extracted, method, component):
    store = extracted
    inputs = ["--input", "video", "--input", "audio=wavlm", "--input", "text=bert"]
    result = _invoke(store, "fit", method, "--dataset", "folder", *inputs, *FIT)
    assert result.exit_code == 0, result.output
    runs = Store.open(store).runs(method)
    assert len(runs) == 2
    record = runs[0].record
    assert record.inputs == {"video": "folder.video.r3d18", "audio": "folder.audio.wavlm", "text": "folder.text.bert"}
    assert set(runs[0].component_names()) == {component.replace("text", m) for m in ("video", "audio", "text")} | {"fused"}
    probed = _invoke(store, "probe", *[r.run_id for r in runs])
    assert probed.exit_code == 0, probed.output
    rows = _invoke(store, "query", "--format", "csv",
                   f"SELECT DISTINCT component FROM probes WHERE run_id = '{runs[0].run_id}' ORDER BY ALL")
    assert rows.exit_code == 0, rows.output
    assert set(rows.output.split()[1:]) == set(runs[0].component_names())
    report = _invoke(store, "report", "--format", "markdown", "--dataset", "folder", "--method", method)
    assert report.exit_code == 0, report.output
    assert method in report.output and "mood" in report.output


def test_a_two_modality_method_given_three_is_refused(extracted):
    result = _invoke(extracted, "fit", "multiloreft", "--dataset", "folder", "--seeds", "0")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "mmpipe: error: multiloreft takes exactly 2 modalities, got 3 (video, audio, text)"]
    assert Store.open(extracted).runs("multiloreft") == []
