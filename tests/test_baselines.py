"""Method-specific invariants of the baselines, their sizes and their supervised target."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mmpipe.adapters.data import load_features
from mmpipe.adapters.losses import discriminator_loss, fooling_loss, symmetric_info_nce
from mmpipe.adapters.methods.apollo import APOLLO, APOLLOConfig
from mmpipe.adapters.methods.drimu import DRIMU, DRIMUConfig
from mmpipe.adapters.methods.early_fusion import EarlyFusion
from mmpipe.adapters.methods.late_fusion import LateFusion, LateFusionConfig
from mmpipe.adapters.methods.mult_interactions import MultiplicativeInteraction
from mmpipe.adapters.methods.multiloreft import MultiLoReFTConfig
from mmpipe.adapters.targets import supervised_target
from mmpipe.adapters.training import single_cpu_thread
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.datasets.sim2 import Sim2Config
from mmpipe.pipeline.fit import fit_runs
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

SIM = {"m1": None, "m2": None}
FAST = {"sizes": (3, 2, 2), "max_epochs": 3, "minibatch_size": 32, "hidden": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    store = Store.open(tmp_path_factory.mktemp("baselines") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=240))
    simulate(store, "sim2", Sim2Config(n=240))
    return store


def test_fooling_is_the_discriminator_loss_with_labels_flipped():
    joint, marginal = torch.randn(8, 1), torch.randn(8, 1)
    torch.testing.assert_close(fooling_loss(joint, marginal), discriminator_loss(marginal, joint))
    zeros = torch.zeros(8, 1)
    assert math.isclose(float(discriminator_loss(zeros, zeros)), 2 * math.log(2), rel_tol=1e-6)
    assert float(discriminator_loss(torch.full((8, 1), 9.0), torch.full((8, 1), -9.0))) < 1e-3


def test_symmetric_info_nce_is_symmetric_and_prefers_aligned_pairs():
    a, b = torch.randn(16, 4), torch.randn(16, 4)
    torch.testing.assert_close(symmetric_info_nce(a, b, 0.1), symmetric_info_nce(b, a, 0.1))
    assert symmetric_info_nce(a, a, 0.1) < symmetric_info_nce(a, b, 0.1)


def test_drimu_encoders_are_trained_against_the_discriminator(store):
    """Discriminator steps lower its loss; encoder steps on the adversarial term raise it."""
    torch.manual_seed(0)
    data = load_features(store, "sim1", SIM)
    model = DRIMU(DRIMUConfig(**FAST), data.dims)
    model.fit_scaler(*model.pair(data.split("train")))
    b1, b2 = model.standardized(*model.pair(data.split("train")))
    discriminators = torch.optim.Adam([p for d in model.discriminators() for p in d.parameters()], lr=1e-2)
    encoders = torch.optim.Adam(model.encoder_parameters(), lr=1e-2)
    with single_cpu_thread(torch.device("cpu")):
        for _ in range(60):  # a strong discriminator first
            discriminators.zero_grad()
            model.discriminator_objective(b1, b2).backward()
            discriminators.step()
        trained = float(model.discriminator_objective(b1, b2).detach())
        assert trained < 2 * 2 * math.log(2) - 0.05  # two modalities; chance is 2·2 log 2
        disc_before = [p.detach().clone() for d in model.discriminators() for p in d.parameters()]
        for _ in range(60):
            encoders.zero_grad()
            model.objective(b1, b2)["unique"].backward()
            encoders.step()
    assert float(model.discriminator_objective(b1, b2).detach()) > trained + 0.05
    after = [p for d in model.discriminators() for p in d.parameters()]
    assert all(torch.equal(x, y) for x, y in zip(disc_before, after, strict=True)), "encoder steps moved D"


def test_apollo_encoders_match_the_frozen_latents(store):
    data = load_features(store, "sim1", SIM)
    config = APOLLOConfig(**{**FAST, "max_epochs": 30}, max_epochs_encoders=0)
    latents_only, _ = APOLLO.fit(data, config, seed=0)
    model, history = APOLLO.fit(data, dataclasses.replace(config, max_epochs_encoders=300, patience=300), seed=0)
    for frozen, final in zip(latents_only.latents(), model.latents(), strict=True):
        torch.testing.assert_close(final, frozen)  # step 2 leaves the latents alone
    assert [h["stage"] for h in history["stage_history"]] == ["latents", "encoders"]
    train1, train2 = model.standardized(*model.pair(data.split("train")))
    with torch.no_grad():
        z = model.encode(train1, train2)
    for component, latent in (("z_s1", model.latent_s.detach()), ("z_s2", model.latent_s.detach()),
                              ("z_m1", model.latent_m1.detach()), ("z_m2", model.latent_m2.detach())):
        error = float((z[component] - latent).detach().pow(2).mean())
        assert error < 0.25 * float(latent.var()), (component, error, float(latent.var()))


def test_mult_interactions_is_bilinear_without_its_linear_terms():
    torch.manual_seed(0)
    layer = MultiplicativeInteraction(2, 3, 1)
    x, y = torch.randn(5, 2), torch.randn(5, 3)
    with torch.no_grad():
        layer.U.weight.zero_()
        layer.V.weight.zero_()
    expected = torch.stack([x[i] @ layer.W[0] @ y[i] for i in range(5)])[:, None]  # xᵀ W y
    torch.testing.assert_close(layer(x, y), expected)
    with torch.no_grad():
        layer.U.weight.fill_(1.0)
        layer.b.fill_(0.5)
    torch.testing.assert_close(layer(x, y), expected + x.sum(1, keepdim=True) + 0.5)


def test_sizes_come_from_the_multiloreft_run_of_the_same_seed(store):
    config = DRIMUConfig(max_epochs=2, minibatch_size=32, hidden=8, device="cpu")
    with pytest.raises(UserError, match=r"fit one with `mmpipe fit multiloreft --dataset sim1 "
                       r"--input m1=simulated --input m2=simulated --seeds 0`"):
        fit_runs(store, "drimu", "sim1", SIM, config, [0])
    mlr = MultiLoReFTConfig(device="cpu", max_epochs_shared=2, max_epochs_private=2, max_epochs_joint=2,
                            minibatch_size=32, hidden=8)
    [reference] = fit_runs(store, "multiloreft", "sim1", SIM, mlr, [0])
    [outcome] = fit_runs(store, "drimu", "sim1", SIM, config, [0])
    ranks = reference.run.record.ranks
    assert outcome.run.record.config["sizes"] == [ranks[c]["final"] for c in ("z_s", "z_m1", "z_m2")]
    assert outcome.run.record.config["sizes_from"] == reference.run.run_id
    assert outcome.run.components(["z_m1"])["z_m1"].shape[1] == ranks["z_m1"]["final"]
    [fixed] = fit_runs(store, "drimu", "sim1", SIM, dataclasses.replace(config, size="input"), [0])
    assert fixed.run.record.config["sizes"] == [10, 10, 10] and fixed.run.record.ablation == "input size"


def test_the_supervised_target_is_the_joint_label_from_train_and_val_rows(store):
    data = load_features(store, "sim1", SIM)
    target = supervised_target(data, None, torch.device("cpu"))
    assert target.name == "y_cond" and target.kind == "continuous"
    assert set(target.train_rows.tolist()) <= set(data.split_index["train"].tolist())
    assert set(target.val_rows.tolist()) <= set(data.split_index["val"].tolist())
    assert abs(float(target.train_y.mean())) < 1e-5  # standardised with train statistics
    categorical = supervised_target(data, "y_s", torch.device("cpu"))
    assert categorical.n_outputs == 4 and categorical.train_y.dtype == torch.int64
    with pytest.raises(UserError, match=r"sim2 has no joint label; choose the supervised target with --set target"):
        supervised_target(load_features(store, "sim2", SIM), None, torch.device("cpu"))


def test_early_fusion_is_one_mlp_on_the_concatenated_standardised_inputs(store):
    data = load_features(store, "sim1", SIM)
    config = EarlyFusion.Config(**FAST)
    model, history = EarlyFusion.fit(data, config, 0)
    fused = model.transform(data.values)["fused"]
    assert fused.shape == (len(data.valid), sum(FAST["sizes"]))  # r_s + r_m1 + r_m2
    scaled = model.scaler(data.values)
    with torch.no_grad():
        by_hand = model.encoder(torch.cat([scaled["m1"], scaled["m2"]], 1))
        torch.testing.assert_close(fused, by_hand)
        torch.testing.assert_close(model.predict(scaled), model.head(fused))  # the head reads the fused layer
    first = model.encoder[0].weight  # (hidden, d1 + d2): one layer sees both modalities
    assert first.shape[1] == sum(data.dims.values())
    assert history["target"] == "y_cond"


def test_late_fusion_objectives(store):
    """unimodal: the sum of the per-modality losses; fused: the loss of the averaged prediction."""
    data = load_features(store, "sim1", SIM)
    target = supervised_target(data, None, torch.device("cpu"))
    torch.manual_seed(0)
    model = LateFusion(LateFusionConfig(**FAST), data.dims)
    model.scaler.fit(data.split("train"))
    batch = model.scaler({k: v[target.train_rows[:16]] for k, v in data.values.items()})
    y = target.train_y[:16]
    with torch.no_grad():
        unimodal = model.objective(target, y, batch)
        assert torch.equal(unimodal, sum(target.loss(p, y) for p in model.unimodal(batch)))
        joint = LateFusion(LateFusionConfig(**FAST, objective="fused"), data.dims)
        joint.load_state_dict(model.state_dict())
        torch.testing.assert_close(joint.objective(target, y, batch), target.loss(model.predict(batch), y))
        assert set(joint.contributions(batch)) == {"m1", "m2"}
