import inspect

import numpy as np
import pytest

from mmpipe.evaluate import probes
from mmpipe.evaluate.probes import ProbeConfig, fit_categorical, fit_continuous, probe_components, probe_run
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from tests.evalruns import publish_synthetic, simulate_sim1, synthetic_components


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from mmpipe.store.root import Store

    store = Store.open(tmp_path_factory.mktemp("probes") / "store", create=True)
    version = simulate_sim1(store, n=900).manifest_version
    return store, version


def _scores(outcome, metric):
    return {(r.component, r.label): r.value for r in outcome.rows if r.metric == metric}


def test_built_in_label_scores_near_perfect_and_noise_near_chance(sim):
    store, version = sim
    outcome = probe_run(store, publish_synthetic(store, version, seed=0))
    acc, mse = _scores(outcome, "accuracy"), _scores(outcome, "mse")
    assert acc[("z_s", "y_s")] > 0.97 and acc[("fused", "y_s")] > 0.97
    for noise in ("phi_m1", "phi_m2", "z_m1", "z_m2"):  # 4 balanced classes: chance is 0.25
        assert 0.12 < acc[(noise, "y_s")] < 0.40, noise
    variance = store.manifest("sim1").table.query("split == 'test'")["y_m1"].var()
    assert mse[("z_m1", "y_m1")] < 0.1 * variance
    assert mse[("phi_m1", "y_m1")] > 0.8 * variance  # noise explains nothing: MSE ≈ label variance
    assert mse[("z_m2", "y_m2")] < mse[("z_s", "y_m2")] / 10
    sil = _scores(outcome, "silhouette")
    assert sil[("z_s", "y_s")] > 0.5 > abs(sil[("phi_m1", "y_s")])
    assert not outcome.skipped
    rows = [r for r in outcome.rows if r.component == "z_s"]
    assert all(r.protocol.startswith("random 70%/15%/rest split, seed 0") for r in rows)
    n_test = int((store.manifest("sim1").table["split"] == "test").sum())
    assert {r.n_test for r in rows} == {n_test}


def test_fit_functions_cannot_take_test_data():
    for fit in (fit_categorical, fit_continuous):
        params = list(inspect.signature(fit).parameters)
        assert params[:4] == ["x_train", "y_train", "x_val", "y_val"], params
        assert not any("test" in p for p in params)


def test_no_leakage_fitting_and_selection_never_see_test_rows(sim, monkeypatch):
    """Spy on every fit: no test row reaches it; only `score` gets test labels."""
    store, version = sim
    manifest = store.manifest("sim1")
    test_rows = manifest.split_mask("test")
    components = synthetic_components(manifest, seed=3)
    # a unique fingerprint per row: the standardised first coordinate of z_s_m1 is continuous, so distinct
    seen: list[np.ndarray] = []
    scored: list[np.ndarray] = []

    def spy(fit):
        def wrapped(x_train, y_train, x_val, y_val, *args, **kwargs):
            seen.extend([x_train, x_val])
            return fit(x_train, y_train, x_val, y_val, *args, **kwargs)
        return wrapped

    real_score = probes.score
    monkeypatch.setattr(probes, "fit_categorical", spy(probes.fit_categorical))
    monkeypatch.setattr(probes, "fit_continuous", spy(probes.fit_continuous))
    monkeypatch.setattr(probes, "score", lambda m, y, p: scored.append(np.asarray(y)) or real_score(m, y, p))
    only = {"z_s_m1": components["z_s_m1"]}
    labels = probes.label_data(manifest)
    probe_components(only, np.ones(len(manifest), bool), manifest, labels, ProbeConfig(k_shot=(3,)), "r")
    standardised = probes.Standardiser.fit(components["z_s_m1"][manifest.split_mask("train")].astype(np.float64))
    test_keys = {tuple(np.round(v, 9)) for v in standardised(components["z_s_m1"][test_rows].astype(np.float64))}
    assert seen and scored
    for block in seen:
        assert not ({tuple(np.round(v, 9)) for v in block} & test_keys)
    n_test = int(test_rows.sum())
    assert all(len(y) == n_test for y in scored)


def test_selection_ignores_test_labels(sim):
    """Scrambling the test labels changes the test score only, never what was fitted."""
    store, version = sim
    manifest = store.manifest("sim1")
    components = {"z_s": synthetic_components(manifest, seed=1)["z_s"]}
    table = manifest.table.copy()
    test = table["split"] == "test"
    table.loc[test, "y_s"] = np.random.default_rng(0).permutation(table.loc[test, "y_s"].to_numpy())
    scrambled = Manifest(manifest.dataset, table, manifest.labels, manifest.modalities, manifest.split_protocol)
    valid = np.ones(len(manifest), bool)
    clean = probe_components(components, valid, manifest, probes.label_data(manifest, ["y_s"]), ProbeConfig(), "r")
    noisy = probe_components(components, valid, scrambled, probes.label_data(scrambled, ["y_s"]), ProbeConfig(), "r")
    assert _scores(clean, "accuracy")[("z_s", "y_s")] > 0.97
    assert _scores(noisy, "accuracy")[("z_s", "y_s")] < 0.5


def test_invalid_rows_and_missing_labels_are_skipped(sim):
    store, version = sim
    manifest = store.manifest("sim1")
    components = synthetic_components(manifest, seed=2)
    # poison the invalid rows and the unlabelled rows: if they were used the scores would collapse
    valid = np.ones(len(manifest), bool)
    valid[::3] = False
    components = {k: v.copy() for k, v in components.items() if k in ("z_s", "z_m1")}
    components["z_s"][~valid] = 1e6
    table = manifest.table.copy()
    table.loc[table.index[1::5], "y_m1"] = np.nan
    holes = Manifest("sim1", table, manifest.labels, manifest.modalities, manifest.split_protocol)
    outcome = probe_components(components, valid, holes, probes.label_data(holes, ["y_s", "y_m1"]), ProbeConfig(), "r")
    acc = _scores(outcome, "accuracy")
    assert acc[("z_s", "y_s")] > 0.97
    expected_test = int((holes.split_mask("test") & valid & table["y_m1"].notna().to_numpy()).sum())
    row = next(r for r in outcome.rows if (r.component, r.label, r.metric) == ("z_m1", "y_m1", "mse"))
    assert row.n_test == expected_test and np.isfinite(row.value)


def test_single_class_in_train_is_reported_and_others_still_run():
    n = 120
    rng = np.random.default_rng(0)
    split = np.array(["train"] * 60 + ["val"] * 30 + ["test"] * 30)
    constant = np.where(split == "train", "a", rng.choice(["a", "b"], n))
    import pandas as pd

    table = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": split, "group": [None] * n,
                          "const": constant, "y": rng.integers(0, 2, n), "v": rng.normal(size=n)})
    labels = (LabelSpec("const", "categorical", "shared"), LabelSpec("y", "categorical", "m1"),
              LabelSpec("v", "continuous", "m2"))
    manifest = Manifest("toy", table, labels, (Modality("m1", "features"), Modality("m2", "features")), "toy split")
    x = np.column_stack([table["y"].to_numpy() + 0.01 * rng.normal(size=n), rng.normal(size=n)])
    outcome = probe_components({"c": x}, np.ones(n, bool), manifest, probes.label_data(manifest), ProbeConfig(), "r")
    assert outcome.skipped == ["c × const (accuracy): only one class ('a') in train; not probed"]
    assert _scores(outcome, "accuracy")[("c", "y")] > 0.95
    assert ("c", "v") in _scores(outcome, "mse")


def test_k_shot_uses_k_examples_per_class(sim):
    store, version = sim
    manifest = store.manifest("sim1")
    components = {"z_s": synthetic_components(manifest, seed=0)["z_s"]}
    outcome = probe_components(components, np.ones(len(manifest), bool), manifest,
                               probes.label_data(manifest, ["y_s"]), ProbeConfig(k_shot=(2, 5)), "r")
    rows = {r.metric: r for r in outcome.rows}
    assert rows["accuracy_2shot"].n_train == 8 and rows["accuracy_5shot"].n_train == 20
    assert "5-shot per class" in rows["accuracy_5shot"].protocol
    assert rows["accuracy_5shot"].value > 0.9  # the shared bits are linearly separable from few examples


def test_ridge_matches_closed_form_and_picks_alpha_on_val():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = np.column_stack([x @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=200), rng.normal(size=200)])
    xv = rng.normal(size=(100, 3))
    yv = np.column_stack([xv @ [1.0, -2.0, 0.5], rng.normal(size=100)])
    fitted = fit_continuous(x, y, xv, yv, (1e-3, 1.0, 1e4))
    assert fitted.alphas[0] < 1e4 and fitted.alphas[1] == 1e4  # the pure-noise label wants full shrinkage
    a = fitted.alphas[0]
    xc = x - x.mean(0)
    w = np.linalg.solve(xc.T @ xc + a * np.eye(3), xc.T @ (y[:, 0] - y[:, 0].mean()))
    np.testing.assert_allclose(fitted.weights[:, 0], w, rtol=1e-6)


def test_probe_run_reads_the_typed_record_and_its_own_manifest_version(store):
    """Two versions of sim1 in the store: a run is probed against the one it was trained on."""
    first = simulate_sim1(store, n=300).manifest_version
    simulate_sim1(store, n=360)
    run = publish_synthetic(store, first, seed=0)
    assert run.record.manifest_version == first and run.record.modalities == ("m1", "m2")
    outcome = probe_run(store, run, labels=["y_s"], components=["z_s"])
    n_test = int((store.manifest("sim1", first).table["split"] == "test").sum())
    assert {(r.component, r.label, r.metric, r.n_test) for r in outcome.rows} == \
        {("z_s", "y_s", "accuracy", n_test), ("z_s", "y_s", "silhouette", n_test)}
