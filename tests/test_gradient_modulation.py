"""On-the-fly gradient modulation (adapters/gradient_modulation.py): the coefficient rule against
hand-computed cases, the hooks on a toy late fusion (the dominant modality's encoder gradients
scaled by exactly k, the other encoder's and the heads' untouched), and fits with modulation off
identical to fits without it."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mmpipe.adapters.data import load_features
from mmpipe.adapters.gradient_modulation import (
    GradientModulation,
    coefficient,
    coefficients,
    discrepancy_ratios,
    modality_scores,
)
from mmpipe.adapters.methods.cross_attention import CrossAttention
from mmpipe.adapters.methods.early_fusion import EarlyFusion
from mmpipe.adapters.methods.late_fusion import LateFusion, LateFusionConfig
from mmpipe.adapters.targets import supervised_target
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

FAST = {"sizes": (3, 2, 2), "max_epochs": 3, "minibatch_size": 32, "hidden": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("modulation") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=240))
    return load_features(store, "sim1", {"m1": None, "m2": None})


def test_coefficients_by_hand():
    # two modalities: rho_a = 3 / 1 = 3 > 1, rho_v = 1/3; k_a = 1 - tanh(0.5 * 3) = 1 - 0.905148253...
    k = coefficients({"a": 3.0, "v": 1.0}, alpha=0.5)
    assert k["v"] == 1.0
    assert math.isclose(k["a"], 0.0948517463551, rel_tol=1e-9)
    # Eq. 10 as published: k jumps to 1 - tanh(alpha) just above rho = 1, and is 1 at rho = 1
    assert coefficient(1.0, 0.8) == 1.0
    assert math.isclose(coefficient(1.0 + 1e-12, 0.8), 1 - 0.664036770, rel_tol=1e-6)
    assert coefficients({"a": 2.0, "v": 2.0}, alpha=5.0) == {"a": 1.0, "v": 1.0}
    assert coefficients({"a": 5.0, "v": 1.0}, alpha=0.0) == {"a": 1.0, "v": 1.0}
    # three modalities: rho_u = s_u / mean of the others; 4 / ((2 + 2) / 2) = 2 -> 1 - tanh(0.2)
    assert discrepancy_ratios({"t": 4.0, "a": 2.0, "v": 2.0}) == {"t": 2.0, "a": 2 / 3, "v": 2 / 3}
    k3 = coefficients({"t": 4.0, "a": 2.0, "v": 2.0}, alpha=0.1)
    assert math.isclose(k3["t"], 0.802624679775, rel_tol=1e-9) and k3["a"] == k3["v"] == 1.0


def test_scores_by_hand():
    # categorical: the true class's softmax score; logits (0, ln 3) give (1/4, 3/4)
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    scores = modality_scores({"a": logits}, torch.tensor([1, 0]), "categorical")
    assert math.isclose(scores["a"], 0.75 + 0.25, rel_tol=1e-6)
    # continuous: exp(-(yhat - y)^2 / 2) summed; errors 1 and 0
    scores = modality_scores({"a": torch.tensor([[1.0], [2.0]])}, torch.tensor([0.0, 2.0]), "continuous")
    assert math.isclose(scores["a"], math.exp(-0.5) + 1.0, rel_tol=1e-6)


def _toy(objective: str = "fused") -> tuple[LateFusion, dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    config = LateFusionConfig(**FAST, objective=objective)
    model = LateFusion(config, {"a": 5, "v": 4}, n_outputs=3)
    inputs = {"a": torch.randn(16, 5), "v": torch.randn(16, 4)}
    return model, inputs, torch.randint(0, 3, (16,))


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _backward(model, inputs, y) -> None:
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model.predict(inputs), y).backward()


def test_hooks_scale_the_dominant_encoder_by_exactly_k_and_nothing_else():
    model, inputs, y = _toy()
    _backward(model, inputs, y)
    plain = _grads(model)
    modulation = GradientModulation(model.modality_encoders(), "ogm", 0.5, "categorical", torch.Generator())
    with torch.no_grad():
        k = modulation.update(model.contributions(inputs), y)
    [dominant] = [m for m, value in k.items() if value < 1]
    [other] = [m for m in k if m != dominant]
    assert k[other] == 1.0 and 0 < k[dominant] < 1
    with modulation.hooks():
        _backward(model, inputs, y)
    modulated = _grads(model)
    assert set(modulated) == set(plain)
    for name, grad in modulated.items():
        if name.startswith(f"encoders.{dominant}."):
            assert torch.equal(grad, plain[name] * k[dominant]), name
            assert not torch.equal(grad, plain[name]), name
        else:  # the other encoder and both heads
            assert torch.equal(grad, plain[name]), name
    _backward(model, inputs, y)  # the hooks are gone after the block
    assert all(torch.equal(g, plain[n]) for n, g in _grads(model).items())


def test_gaussian_enhancement_adds_noise_of_the_scaled_gradients_std_to_the_encoders_only():
    model, inputs, y = _toy()
    _backward(model, inputs, y)
    plain = _grads(model)
    noisy = []
    for _ in range(2):
        modulation = GradientModulation(model.modality_encoders(), "ogm-ge", 0.5, "categorical",
                                        torch.Generator().manual_seed(7))
        with torch.no_grad():
            k = modulation.update(model.contributions(inputs), y)
        with modulation.hooks():
            _backward(model, inputs, y)
        noisy.append(_grads(model))
    assert all(torch.equal(noisy[0][n], noisy[1][n]) for n in plain), "the noise follows its generator"
    for name, grad in noisy[0].items():
        if not name.startswith("encoders."):
            assert torch.equal(grad, plain[name]), name
            continue
        scaled = plain[name] * k[name.split(".")[1]]
        noise = grad - scaled
        assert not torch.equal(grad, scaled), name
        if noise.numel() >= 32:  # the weights: enough elements to read a standard deviation
            ratio = float(noise.std() / scaled.std(correction=0))
            assert 0.6 < ratio < 1.4, (name, ratio)


def test_modulation_off_trains_exactly_as_without_the_option(data):
    base = LateFusionConfig(**FAST, objective="fused")
    plain, history = LateFusion.fit(data, base, 0)
    assert "modulation" not in history
    # alpha = 0 makes every k 1: the hooks run and must leave training bit-identical
    hooked, hooked_history = LateFusion.fit(data, dataclasses.replace(base, modulation="ogm", modulation_alpha=0.0), 0)
    assert all(torch.equal(v, hooked.state_dict()[k]) for k, v in plain.state_dict().items())
    summary = hooked_history["modulation"]
    assert summary["mean_coefficient"] == {"m1": 1.0, "m2": 1.0} and summary["steps"] > 0
    assert math.isclose(sum(summary["dominant_share"].values()), 1.0), "two modalities: one dominates per step"
    strong, strong_history = LateFusion.fit(data, dataclasses.replace(base, modulation="ogm", modulation_alpha=1.0), 0)
    summary = strong_history["modulation"]
    assert summary["rule"] == "ogm" and summary["alpha"] == 1.0
    assert any(0 < share for share in summary["dominant_share"].values())
    changed = [k for k, v in plain.state_dict().items() if not torch.equal(v, strong.state_dict()[k])]
    assert any(k.startswith("encoders.") for k in changed)


def test_a_categorical_target_and_gaussian_enhancement_fit(data):
    config = LateFusionConfig(**FAST, target="y_s", modulation="ogm-ge", modulation_alpha=0.8)
    model, history = LateFusion.fit(data, config, 0)
    assert supervised_target(data, "y_s", torch.device("cpu")).kind == "categorical"
    assert history["modulation"]["rule"] == "ogm-ge"
    assert all(torch.isfinite(v).all() for v in model.transform(data.values).values())
    again, _ = LateFusion.fit(data, config, 0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("cls", [EarlyFusion, CrossAttention])
def test_methods_without_per_modality_predictions_refuse_modulation(cls, data):
    config = cls.Config(**FAST, modulation="ogm")
    with pytest.raises(UserError, match=f"{cls.name}: modulation=ogm needs each modality's own contribution"):
        cls.fit(data, config, 0)
