import numpy as np
import pytest
from PIL import Image

from mmpipe.evaluate.plots import pca_2d, plot_run, rank_trajectory
from mmpipe.store.errors import UserError
from tests.evalruns import publish_synthetic, simulate_sim1, synthetic_components


def test_pca_keeps_the_dominant_direction():
    rng = np.random.default_rng(0)
    x = np.column_stack([10 * rng.normal(size=500), rng.normal(size=500), 0.1 * rng.normal(size=500)])
    xy = pca_2d(x, x)
    assert xy.shape == (500, 2)
    assert abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]) > 0.99
    assert pca_2d(x[:, :1], x[:, :1]).shape == (500, 2)  # rank-1 components still plot


def test_plot_run_writes_png_and_pdf(store, tmp_path):
    version = simulate_sim1(store, n=400).manifest_version
    run = publish_synthetic(store, version)
    manifest = store.manifest("sim1")
    paths = plot_run(run, manifest, tmp_path / "png", components=["z_s", "z_m1"], labels=["y_s", "y_m1"])
    assert [p.name for p in paths] == [f"{run.run_id}-pca.png", f"{run.run_id}-ranks.png"]
    width, height = Image.open(paths[0]).size
    assert width > height > 300  # 2 label rows × 2 component columns (+ legend / colour bar)
    pdfs = plot_run(run, manifest, tmp_path / "pdf", "pdf", labels=["y_s"])
    assert all(p.read_bytes()[:4] == b"%PDF" for p in pdfs)
    with pytest.raises(UserError, match="unknown plot format 'svg'; valid: png, pdf"):
        plot_run(run, manifest, tmp_path, "svg")
    with pytest.raises(UserError, match="no label 'nope'; valid: y_s, y_m1, y_m2, y_cond"):
        plot_run(run, manifest, tmp_path, labels=["nope"])


def test_rank_plot_needs_a_rank_history(store, tmp_path):
    version = simulate_sim1(store, n=300).manifest_version
    manifest = store.manifest("sim1")
    parts = synthetic_components(manifest, 0)
    fusion = publish_synthetic(store, version, method="late_fusion", components={"fused": parts["fused"]})
    import dataclasses

    from mmpipe.store.runs import RunEntry

    record = dataclasses.replace(fusion.record, history={})
    bare = RunEntry(fusion.path, fusion.method, fusion.fingerprint, record, fusion.key)
    with pytest.raises(UserError, match="records no rank history"):
        rank_trajectory(bare, tmp_path / "r.png")
    assert [p.name for p in plot_run(bare, manifest, tmp_path)] == [f"{bare.run_id}-pca.png"]


def test_rank_plot_draws_ranks_not_the_validation_losses_beside_them():
    from mmpipe.evaluate.plots import rank_components

    history = [{"epoch": 1, "stage": "joint", "z_s": 5, "z_m1": 4, "z_m2": 3, "val_mi": 2.9, "val_orth": 0.1}]
    assert rank_components(history) == ["z_s", "z_m1", "z_m2"]
