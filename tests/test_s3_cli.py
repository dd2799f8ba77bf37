"""`mmpipe fit s3` end to end on sequence entries: a published run whose components are the model's,
whose record holds S3's typed summary, and which the same command does not fit twice."""

import torch
from typer.testing import CliRunner

from mmpipe.adapters.checkpoint import load_model
from mmpipe.adapters.data import load_features
from mmpipe.adapters.methods.s3 import STAGE_COMPONENTS, S3Summary
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.test_s3 import write_toy

runner = CliRunner()
FAST = ["--set", "widths=8,8", "--set", "heads=2", "--set", "layers=2", "--set", "granularity=4",
        "--set", "expansion=2", "--set", "minibatch_size=32", "--set", "max_epochs_specialization=2",
        "--set", "max_epochs_selection=2", "--set", "sparsify_batch_size=40", "--set", "probe_c_grid=1",
        "--set", "device=cpu"]


def test_fit_s3_through_the_cli(tmp_path):
    root = tmp_path / "store"
    write_toy(Store.open(root, create=True), silent_rows=3)
    args = ["--store", str(root), "fit", "s3", "--dataset", "toy", "--seeds", "0", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    [run] = Store.open(root).runs("s3")
    record = run.record
    assert run.component_names() == [*STAGE_COMPONENTS, "e_vision", "e_text", "fused"]
    assert record.inputs == {"vision": "toy.vision.seq", "text": "toy.text.seq"} and record.ablation is None
    assert record.settings["granularity"] == 4 and record.n_params > 0 and record.epochs == 4
    summary = S3Summary.from_history(record.history)
    assert summary.rho_val in summary.rhos and summary.lengths_from_padding_mismatch == 3 * 2  # rows × modalities
    assert [row["stage"] for row in record.history["stage_history"]] == ["specialization", "selection",
                                                                         "sparsification"]
    # the published components are the checkpoint's transform of the rows with their stored lengths
    data = load_features(Store.open(root), "toy", {"vision": None, "text": None})
    model = load_model(run)
    expected = model.transform(data.values, {i.modality: i.lengths for i in data.inputs})
    stored = run.components()
    for name, values in expected.items():
        torch.testing.assert_close(stored[name], values, rtol=0, atol=0)
    # ... not the lengths the zero padding suggests: the silent rows' last step counts
    from_padding = model.transform(data.values)
    assert not torch.equal(from_padding["fused"][:3], stored["fused"][:3])
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already fitted, nothing to do" in again.output
