"""Simulation I and II follow Appendix A.1: dimensions, label definitions, balance, determinism;
`simulate` stores them as the named modalities m1 and m2."""

from dataclasses import replace
from math import gamma as gamma_fn

import numpy as np
import pytest

from mmpipe.pipeline.datasets.sim1 import Sim1, Sim1Config
from mmpipe.pipeline.datasets.sim2 import Sim2, Sim2Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.manifest import Modality
from mmpipe.store.root import Store


@pytest.fixture(scope="module")
def sim1():
    return Sim1().generate(Sim1Config(n=20_000, seed=3))


@pytest.fixture(scope="module")
def sim2():
    return Sim2().generate(Sim2Config(n=20_000, seed=3))


def _residual(features: np.ndarray, target: np.ndarray) -> float:
    """Mean squared residual of the best affine fit of target on features."""
    design = np.hstack([features.astype(np.float64), np.ones((len(features), 1))])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.mean((design @ coef - target) ** 2))


def _rank(features: np.ndarray) -> int:
    singular = np.linalg.svd(features.astype(np.float64), compute_uv=False)
    return int((singular > singular[0] * 1e-5).sum())


def test_sim1_shapes_and_rank(sim1):
    manifest, arrays = sim1
    assert arrays["m1"].shape == (20_000, 10) and arrays["m2"].shape == (20_000, 10)
    # each view is a linear image of 4 latents ([z_m, z_s], 2 + 2)
    assert _rank(arrays["m1"]) == 4 and _rank(arrays["m2"]) == 4
    assert [s.name for s in manifest.labels] == ["y_s", "y_m1", "y_m2", "y_cond"]
    assert {s.name: s.owner for s in manifest.labels} == {"y_s": "shared", "y_m1": "m1", "y_m2": "m2", "y_cond": "joint"}


def test_sim1_labels_as_specified(sim1):
    manifest, arrays = sim1
    table = manifest.table
    counts = table["y_s"].value_counts(normalize=True).sort_index()
    assert list(counts.index) == [0, 1, 2, 3] and np.allclose(counts, 0.25, atol=0.015)
    # y_m1 = Σ z_m1 is a linear function of the latents, so exactly linear in h1 and not in h2
    assert _residual(arrays["m1"], table["y_m1"]) < 1e-8
    assert _residual(arrays["m2"], table["y_m1"]) > 0.01
    assert _residual(arrays["m2"], table["y_m2"]) < 1e-8
    assert _residual(arrays["m1"], table["y_m2"]) > 0.01
    # Σ of two Weibull(1.5)·0.3 and two Beta(3, 2)
    assert table["y_m1"].mean() == pytest.approx(2 * 0.3 * gamma_fn(1 + 1 / 1.5), rel=0.02)
    assert table["y_m2"].mean() == pytest.approx(2 * 3 / 5, rel=0.01)
    assert table["y_m2"].var() == pytest.approx(2 * (3 * 2) / (5**2 * 6), rel=0.05)
    odd = table["y_s"] % 2 == 1
    assert np.array_equal(table["y_cond"], np.where(odd, table["y_m1"], table["y_m2"]))


def test_sim1_cond_rules():
    literal, _ = Sim1().generate(Sim1Config(n=2000, cond_rule="equals_one"))
    undefined, _ = Sim1().generate(Sim1Config(n=2000, cond_rule="undefined_nan"))
    t = literal.table
    assert np.array_equal(t["y_cond"], np.where(t["y_s"] == 1, t["y_m1"], t["y_m2"]))
    u = undefined.table
    assert u["y_cond"].isna().equals(u["y_s"] >= 2)


def test_sim1_shared_noise_is_a_variance():
    # the bits are linear in h1 up to the noise, so the residual of y_s = 2·b0 + b1 on h1 is the
    # variance of 2·ε0 + ε1, i.e. 5σ²: 0.05 for N(0, 0.01 I) read as a covariance
    manifest, arrays = Sim1().generate(Sim1Config(n=20_000, seed=1))
    assert _residual(arrays["m1"], manifest.table["y_s"].to_numpy(float)) == pytest.approx(5 * 0.01, rel=0.05)
    manifest, arrays = Sim1().generate(Sim1Config(n=4000, shared_noise_var=0.0))
    assert _residual(arrays["m1"], manifest.table["y_s"].to_numpy(float)) < 1e-8


def test_sim2_shapes_labels_and_dependencies(sim2):
    manifest, arrays = sim2
    table = manifest.table
    assert arrays["m1"].shape == (20_000, 40) and arrays["m2"].shape == (20_000, 80)
    assert _rank(arrays["m1"]) == 4 and _rank(arrays["m2"]) == 3
    owners = {s.name: (s.kind, s.owner) for s in manifest.labels}
    assert owners == {"z1": ("categorical", "shared"), "z2": ("continuous", "shared"),
                      "z3": ("categorical", "m1"), "z4": ("continuous", "m1"), "z5": ("continuous", "m2")}
    for binary in ("z1", "z3"):
        assert set(table[binary]) == {0, 1} and table[binary].mean() == pytest.approx(0.5, abs=0.02)
    # additive Gamma perturbations: mean √c · shape · scale, always positive
    gap2 = table["z2"] - table["z1"]
    gap4 = table["z4"] - 2 * table["z2"] - table["z3"]
    gap5 = table["z5"] - table["z2"]
    assert (gap2 > 0).all() and (gap4 > 0).all() and (gap5 > 0).all()
    assert gap2.mean() == pytest.approx(np.sqrt(0.0045) * 5 * 1, rel=0.02)
    assert gap4.mean() == pytest.approx(np.sqrt(0.00125) * 2 * 2, rel=0.02)
    assert gap5.mean() == pytest.approx(np.sqrt(0.0075) * 3 * 2, rel=0.02)
    # shared factors are linear in both views; z4 only in view 1, z5 only in view 2
    for view in ("m1", "m2"):
        assert _residual(arrays[view], table["z2"]) < 1e-8
    assert _residual(arrays["m1"], table["z4"]) < 1e-8 and _residual(arrays["m2"], table["z4"]) > 1e-3
    assert _residual(arrays["m2"], table["z5"]) < 1e-8 and _residual(arrays["m1"], table["z5"]) > 1e-3


def test_sim2_gamma_convention_is_configurable():
    rate, _ = Sim2().generate(Sim2Config(n=20_000, seed=3, gamma_convention="shape_rate"))
    gap5 = rate.table["z5"] - rate.table["z2"]
    assert gap5.mean() == pytest.approx(np.sqrt(0.0075) * 3 / 2, rel=0.02)


@pytest.mark.parametrize("dataset, config", [(Sim1(), Sim1Config(n=500)), (Sim2(), Sim2Config(n=500))])
def test_deterministic_by_seed_and_split_fractions(dataset, config):
    a_manifest, a = dataset.generate(config)
    b_manifest, b = dataset.generate(config)
    c_manifest, c = dataset.generate(replace(config, seed=1))
    assert a_manifest.version() == b_manifest.version() and np.array_equal(a["m1"], b["m1"])
    assert a_manifest.version() != c_manifest.version() and not np.array_equal(a["m1"], c["m1"])
    counts = a_manifest.table["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (350, 75, 75)


@pytest.mark.parametrize("name, dataset, config", [("sim1", Sim1(), Sim1Config(n=300)), ("sim2", Sim2(), Sim2Config(n=300))])
def test_simulate_stores_one_entry_per_named_modality(tmp_path, name, dataset, config):
    store = Store.open(tmp_path / "store", create=True)
    result = simulate(store, name, config)
    assert result.created == [f"{name}.m1.simulated", f"{name}.m2.simulated"]
    manifest, arrays = dataset.generate(config)
    stored = store.manifest(name, result.manifest_version)
    assert stored.modalities == (Modality("m1", "features"), Modality("m2", "features")) == manifest.modalities
    for modality in ("m1", "m2"):
        entry = store.features(f"{name}.{modality}.simulated")
        assert entry.key["modality"] == entry.meta["modality"] == modality
        assert entry.key["manifest_version"] == result.manifest_version == manifest.version()
        assert result.entries[modality].fingerprint == entry.fingerprint
        # stored as float32: exactly the generated values
        assert np.array_equal(entry.load().numpy(), arrays[modality])
    again = simulate(store, name, config)
    assert again.created == [] and {m: e.fingerprint for m, e in again.entries.items()} == \
        {m: e.fingerprint for m, e in result.entries.items()}
