"""S3's figures (evaluate/plots_s3.py) on tiny S3 runs fitted and probed through the CLI: the files,
the pruning curve's series against the results DB's probe means, the seeds of a setup (another
setting is not one of them), the routing picture's data against the record, and a run without
probe rows (validation curve only, and a note saying to probe)."""

from __future__ import annotations

import math
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmpipe.adapters.methods.s3 import S3Summary
from mmpipe.evaluate.plots_s3 import CURVE_COMPONENTS, pruning_curve, routing_series, setup_runs
from mmpipe.evaluate.results import query
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.test_s3 import write_toy
from tests.test_s3_cli import FAST

runner = CliRunner()


def invoke(root, *args):
    result = runner.invoke(app, ["--store", str(root), *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A store with two seeds of one S3 setup and one seed of another (the L_TS-only ablation); not probed."""
    root = tmp_path_factory.mktemp("plots_s3") / "store"
    write_toy(Store.open(root, create=True))
    invoke(root, "fit", "s3", "--dataset", "toy", "--seeds", "0,1", *FAST)
    invoke(root, "fit", "s3", "--dataset", "toy", "--seeds", "0", *FAST, "--set", "selection_losses=ts")
    return root


def _runs(root):
    store = Store.open(root)
    main = [r for r in store.runs("s3") if r.record.ablation is None]
    other = [r for r in store.runs("s3") if r.record.ablation is not None]
    return store, sorted(main, key=lambda r: r.record.seed), other


def test_the_seeds_of_a_setup_are_its_runs_with_other_seeds_only(fitted):
    store, main, [other] = _runs(fitted)
    assert [r.run_id for r in setup_runs(store, main[1])] == [r.run_id for r in main]
    assert [r.run_id for r in setup_runs(store, other)] == [other.run_id]


def test_without_probes_the_pruning_figure_shows_validation_and_says_to_probe(fitted, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(fitted, root)
    store, main, _ = _runs(root)
    curve = pruning_curve(main[0], store)
    assert curve.metric is None and curve.probed == () and len(curve.unprobed) == 2
    for seed, run in zip(curve.seeds, main, strict=True):  # the val curve is each record's own
        summary = S3Summary.from_history(run.record.history)
        assert curve.series(seed.val) == [summary.val_accuracy[c] for c in CURVE_COMPONENTS]
        assert seed.rho_val == summary.rho_val
    result = invoke(root, "plot", main[0].run_id, "--out", str(tmp_path / "plots"))
    assert "no probe rows for label y yet" in result.output and f"mmpipe probe {main[0].run_id}" in result.output
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == sorted(f"{main[0].run_id}-{kind}.png" for kind in ("pca", "pruning", "routing", "curves"))
    width, height = Image.open(tmp_path / "plots" / f"{main[0].run_id}-pruning.png").size
    assert height > 300 and width < 2 * height  # one panel: validation only


def test_pruning_curve_is_the_results_db_probe_means(fitted, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(fitted, root)
    store, main, other = _runs(root)
    invoke(root, "probe", "--all", "--label", "y")
    curve = pruning_curve(main[0], store)
    assert curve.metric == "accuracy" and curve.label == "y" and curve.unprobed == ()
    summary = {row[0]: row[1] for row in query(store.results_db, (
        "SELECT component, mean FROM probe_summary WHERE method = 's3' AND ablation IS NULL "
        "AND label = 'y' AND metric = 'accuracy'")).rows}
    assert curve.mean("test") == pytest.approx([summary[c] for c in CURVE_COMPONENTS], abs=1e-12)
    assert curve.reference("test", "spec") == pytest.approx(summary["spec"], abs=1e-12)
    assert curve.reference("test", "sel") == pytest.approx(summary["sel"], abs=1e-12)
    per_run = {(row[0], row[1]): row[2] for row in query(store.results_db, (
        "SELECT run_id, component, value FROM probes WHERE label = 'y' AND metric = 'accuracy'")).rows}
    for seed in curve.seeds:
        assert curve.series(seed.test) == [per_run[(seed.run_id, c)] for c in CURVE_COMPONENTS]
    assert not any(math.isnan(v) for v in curve.mean("test"))

    result = invoke(root, "plot", main[1].run_id, "--out", str(tmp_path / "png"))
    assert "no probe rows" not in result.output
    for kind in ("pca", "pruning", "routing"):
        image = Image.open(tmp_path / "png" / f"{main[1].run_id}-{kind}.png")
        image.verify()
    width, height = Image.open(tmp_path / "png" / f"{main[1].run_id}-pruning.png").size
    assert width > 2 * height  # two panels: test and validation
    invoke(root, "plot", other[0].run_id, "--out", str(tmp_path / "pdf"), "--format", "pdf")
    for kind in ("pruning", "routing"):
        assert (tmp_path / "pdf" / f"{other[0].run_id}-{kind}.pdf").read_bytes()[:5] == b"%PDF-"
    assert [s.run_id for s in pruning_curve(other[0], store).seeds] == [other[0].run_id]


def test_routing_picture_is_the_records_usage_and_entropies(fitted):
    _, [run, _], _ = _runs(fitted)
    summary = S3Summary.from_history(run.record.history)
    series = routing_series(summary)
    assert series.stages == ("specialization", "selection") and series.modalities == ("vision", "text")
    assert series.n_experts == 8  # granularity 4 × expansion 2
    for stage in series.stages:
        for modality in series.modalities:
            layers = summary.routing[stage][modality]
            assert series.usage[stage][modality].shape == (2, 8)
            assert series.usage[stage][modality].sum(1) == pytest.approx([1.0, 1.0])
            assert series.usage[stage][modality].tolist() == [layer.usage for layer in layers]
            assert series.local_entropy[stage][modality].tolist() == [layer.local_entropy for layer in layers]
            assert series.global_entropy[stage][modality].tolist() == [layer.global_entropy for layer in layers]
