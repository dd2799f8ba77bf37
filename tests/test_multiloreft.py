"""MultiLoReFT: Eq. 1–3, pruning (Algorithm 2), staged training, checkpoints, ablations."""

import dataclasses

import numpy as np
import pytest
import torch

from mmpipe.adapters.checkpoint import load_model
from mmpipe.adapters.data import load_features
from mmpipe.adapters.methods.multiloreft import MultiLoReFT, MultiLoReFTConfig
from mmpipe.adapters.training import seed_everything
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.datasets.sim2 import Sim2Config
from mmpipe.pipeline.fit import fit_runs
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

FAST = MultiLoReFTConfig(device="cpu", patience=3, joint_patience=3, max_epochs_shared=4, max_epochs_private=4,
                         max_epochs_joint=6, minibatch_size=64, hidden=16)
SIM = {"m1": None, "m2": None}  # both simulated modalities, their only feature


def _model(dims=(10, 10), modalities=("m1", "m2"), **changes):
    return MultiLoReFT(dataclasses.replace(FAST, **changes), dict(zip(modalities, dims, strict=True)),
                       generator=torch.Generator().manual_seed(0))


def test_edits_follow_eq_2_and_3():
    model = _model(dims=(6, 9), rank=4)
    assert not model.tied and model.ranks() == {"z_s": 4, "z_m1": 4, "z_m2": 4}
    h1, h2 = torch.randn(5, 6), torch.randn(5, 9)
    out = model(h1, h2)
    r_s1, r_m1 = model.R_s(1), model.R_m1
    phi1 = h1 + (model.f_s1(h1) - h1 @ r_s1.T) @ r_s1 + (model.f_m1(h1) - h1 @ r_m1.T) @ r_m1
    torch.testing.assert_close(out["phi1"], phi1)
    torch.testing.assert_close(out["z_s1"], phi1 @ r_s1.T)
    torch.testing.assert_close(out["z_m2"], out["phi2"] @ model.R_m2.T)
    assert out["phi2"].shape == (5, 9) and out["z_s2"].shape == (5, 4)


def test_equal_dims_tie_the_shared_projection():
    model = _model()
    assert model.tied and model.R_s(1) is model.R_s(2) and len(model.shared) == 1
    assert not _model(shared_projection="per_modality").tied
    with pytest.raises(UserError, match="equal dims"):
        _model(dims=(6, 9), shared_projection="tied")


def test_components_are_named_for_the_modalities_and_standardised_inside():
    model = _model(dims=(6, 9), modalities=("video", "audio"), rank=3)
    assert MultiLoReFT.component_names(("video", "audio")) == (
        "z_s_video", "z_s_audio", "z_video", "z_audio", "phi_video", "phi_audio", "z_s", "fused")
    with torch.no_grad():
        model.scaler.mean_video.fill_(2.0)
        model.scaler.scale_audio.fill_(3.0)
    h1, h2 = torch.randn(7, 6), torch.randn(7, 9)
    parts = model.transform({"audio": h2, "video": h1})  # a mapping: the method's order decides h1, h2
    assert tuple(parts) == MultiLoReFT.component_names(("video", "audio"))
    raw = model(h1 - 2.0, h2 / 3.0)
    torch.testing.assert_close(parts["z_s_video"], raw["z_s1"])
    torch.testing.assert_close(parts["phi_audio"], raw["phi2"])
    torch.testing.assert_close(parts["z_s"], (parts["z_s_video"] + parts["z_s_audio"]) / 2)
    torch.testing.assert_close(parts["fused"], torch.cat([parts["z_s"], parts["z_video"], parts["z_audio"]], dim=1))
    assert {"scaler.mean_video", "scaler.scale_audio"} <= set(model.state_dict())


def test_refuses_other_than_two_pooled_modalities():
    with pytest.raises(UserError, match="exactly 2"):
        MultiLoReFT(FAST, {"a": 4, "b": 4, "c": 4})
    with pytest.raises(UserError, match="sequence"):
        MultiLoReFT.check_inputs({"m1": "pooled", "m2": "sequence"})


def _make_rank_deficient(model, keep=(2, 3, 1)):
    """Zero all but ``keep`` singular values of each projection (shared jointly)."""
    with torch.no_grad():
        for params, k in ((list(model.shared), keep[0]), ([model.R_m1], keep[1]), ([model.R_m2], keep[2])):
            joint = torch.cat([p.data for p in params], dim=1)
            u, s, vh = torch.linalg.svd(joint, full_matrices=False)
            s[k:] = 0
            low = u @ torch.diag(s) @ vh
            for p, part in zip(params, torch.split(low, [p.shape[1] for p in params], dim=1), strict=True):
                p.data.copy_(part)


@pytest.mark.parametrize("dims", [(8, 8), (6, 9)], ids=["tied", "per-modality"])
def test_pruning_zero_singular_values_leaves_phi_unchanged(dims):
    model = _model(dims=dims, rank=5)
    _make_rank_deficient(model)
    h1, h2 = torch.randn(20, dims[0]), torch.randn(20, dims[1])
    before = model(h1, h2)
    assert model.prune(threshold=1e-4)
    assert model.ranks() == {"z_s": 2, "z_m1": 3, "z_m2": 1}
    after = model(h1, h2)
    for name in ("phi1", "phi2"):
        torch.testing.assert_close(after[name], before[name], atol=1e-5, rtol=1e-5)
    # z is rotated by U_kᵀ: the kept coordinates change basis but not geometry
    for name in ("z_s1", "z_s2", "z_m1", "z_m2"):
        torch.testing.assert_close(after[name] @ after[name].T, before[name] @ before[name].T, atol=1e-4, rtol=1e-4)
    assert not model.prune(threshold=1e-4)  # nothing left below ε: no change


def test_pruning_keeps_at_least_one_direction():
    model = _model(rank=4)
    assert model.prune(threshold=1e9)
    assert model.ranks() == {"z_s": 1, "z_m1": 1, "z_m2": 1}


def test_removed_options_are_gone():
    fields = {f.name for f in dataclasses.fields(MultiLoReFTConfig)}
    assert not fields & {"orth_normalized", "hsic_standardize", "mi_similarity"}
    assert not hasattr(_model(), "shared_scale")


@pytest.fixture(scope="module")
def sim1_store(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("sim1") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=600))
    return store


@pytest.fixture(scope="module")
def sim1_data(sim1_store):
    return load_features(sim1_store, "sim1", SIM)


def test_training_continues_after_pruning(sim1_data):
    config = dataclasses.replace(FAST, prune_threshold=0.9, weight_decay=0.3, lr=0.03, max_epochs_joint=12,
                                 joint_patience=50)
    model, history = MultiLoReFT.fit(sim1_data, config, seed=0)
    joint = [h for h in history["rank_history"] if h["stage"] == "joint"]
    first_prune = next(i for i, h in enumerate(joint) if h["z_s"] < 10 or h["z_m1"] < 10 or h["z_m2"] < 10)
    assert first_prune < len(joint) - 1, "pruning must happen before the last epoch"
    assert all(np.isfinite(h["val_mi"]) for h in joint[first_prune:])
    assert history["ranks"]["z_s"]["final"] == model.ranks()["z_s"]


def test_staged_schedule_and_history(sim1_data):
    _, history = MultiLoReFT.fit(sim1_data, FAST, seed=0)
    stages = [(h["stage"], h["losses"]) for h in history["stage_history"]]
    assert stages == [("shared", ["mi"]), ("private", ["indep", "orth", "mi"]), ("joint", ["indep", "orth", "mi"])]
    assert history["stage_history"][0]["end_epoch"] == history["stage_history"][1]["start_epoch"]
    assert len(history["rank_history"]) == history["epochs"]
    assert set(history["rank_history"][0]) == {"epoch", "stage", "z_s", "z_m1", "z_m2", "val_indep", "val_orth",
                                               "val_mi"}
    assert set(history["ranks"]) == {"z_s", "z_m1", "z_m2"}


def test_only_the_stage_parameters_train(sim1_data):
    config = dataclasses.replace(FAST, max_epochs_private=0, max_epochs_joint=0)
    model, _ = MultiLoReFT.fit(sim1_data, config, seed=0)
    fresh = MultiLoReFT(config, sim1_data.dims, generator=seed_everything(0))  # the same initialisation as fit
    assert not torch.equal(model.shared[0], fresh.shared[0])  # shared stage trained R_s
    torch.testing.assert_close(model.R_m1, fresh.R_m1)  # private projections untouched
    torch.testing.assert_close(model.f_m2.out.weight, fresh.f_m2.out.weight)


@pytest.mark.parametrize("changes, stages, ablation", [
    ({"staged": False}, ["joint"], "no staging"),
    ({"use_mi": False}, ["shared", "private", "joint"], "- MI"),
    ({"prune": False, "weighting": "fixed"}, ["shared", "private", "joint"], "no pruning, - GradNorm"),
    ({"use_orth": False, "use_indep": False}, ["shared", "private", "joint"], "- orthogonality, - independence"),
])
def test_ablations_are_config(sim1_data, changes, stages, ablation):
    config = dataclasses.replace(FAST, **changes)
    model, history = MultiLoReFT.fit(sim1_data, config, seed=0)
    assert [h["stage"] for h in history["stage_history"]] == stages
    assert MultiLoReFT.ablation(config) == ablation and MultiLoReFT.ablation(FAST) is None
    if not config.use_mi:
        assert history["stage_history"][0]["reason"].startswith("skipped")
        assert all("mi" not in h.get("losses", []) for h in history["stage_history"])
    if not config.prune:
        assert model.ranks() == {"z_s": 10, "z_m1": 10, "z_m2": 10}


def test_fixed_weights_need_three_values(sim1_data):
    with pytest.raises(UserError, match="three values"):
        MultiLoReFT.fit(sim1_data, dataclasses.replace(FAST, weighting="fixed", fixed_weights=(1.0, 1.0)), seed=0)


def test_seeded_determinism_and_checkpoint_round_trip(sim1_store, sim1_data):
    first = fit_runs(sim1_store, "multiloreft", "sim1", SIM, FAST, [0, 1])
    run0, run1 = (o.run for o in first)
    again = MultiLoReFT.fit(sim1_data, FAST, seed=0)[0]
    parts = again.transform(sim1_data.values)
    stored = run0.components()
    for name in MultiLoReFT.component_names(sim1_data.modalities):
        torch.testing.assert_close(parts[name], stored[name])
    assert not torch.equal(run1.components(["z_s"])["z_s"], stored["z_s"])
    restored = load_model(run0)
    torch.testing.assert_close(restored.transform(sim1_data.values)["fused"], stored["fused"])
    assert run0.record.ranks["z_s"]["final"] == restored.ranks()["z_s"]
    # the same config and seed again is a no-op
    assert all(o.reused for o in fit_runs(sim1_store, "multiloreft", "sim1", SIM, FAST, [0, 1]))


def test_sim2_uses_per_modality_shared_projections(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    simulate(store, "sim2", Sim2Config(n=400))
    [outcome] = fit_runs(store, "multiloreft", "sim2", SIM, dataclasses.replace(FAST, rank=6), [0])
    run = outcome.run
    assert run.record.dims == {"m1": 40, "m2": 80} and run.record.ranks["z_s"]["initial"] == 6
    parts = run.components()
    assert parts["phi_m1"].shape == (400, 40) and parts["phi_m2"].shape == (400, 80)
    assert parts["z_s_m1"].shape[1] == parts["z_s_m2"].shape[1]
    assert np.isfinite(parts["fused"].numpy()).all()
