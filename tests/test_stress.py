"""`mmpipe stress` (issue 17 point 1): the corruption rules, the constant test set, rate 0 = the
clean probe scores, the seeded nested choice of rows, a flat curve for a representation that does
not see the corrupted modality, every registered method (pooled and sequence inputs), the
method's own missing-input rule, the CLI end to end and idempotent re-runs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import duckdb
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmpipe.adapters import METHODS
from mmpipe.adapters.base import AdapterMethod
from mmpipe.adapters.checkpoint import load_model
from mmpipe.adapters.data import load_features
from mmpipe.evaluate import corruption, probes
from mmpipe.evaluate.probes import ProbeConfig, probe_run
from mmpipe.evaluate.results import save_probes, save_stress
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.fit import fit_runs
from mmpipe.pipeline.simulate import simulate
from mmpipe.pipeline.stress import StressConfig, corrupted_versions, run_features, stress_run
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store
from tests.affect_files import write
from tests.test_methods_registry import FAST, _as_sequences, three_modalities

runner = CliRunner()
RATES = (0.0, 0.2, 0.4, 0.6)
LATE_FUSION = METHODS.get("late-fusion").Config(sizes=(3, 2, 2), max_epochs=3, minibatch_size=32, hidden=8,
                                                device="cpu")


# -- the pure rules -------------------------------------------------------------------------------
def test_rows_are_a_seeded_nested_choice_of_the_candidates():
    candidates = np.arange(3, 300, 3)  # 99 rows

    def chosen(seed):
        order = corruption.row_order(candidates, seed)
        return {rate: order[:corruption.corrupted_count(rate, len(order))] for rate in RATES}

    first, again, other = chosen(5), chosen(5), chosen(6)
    for rate in RATES:
        np.testing.assert_array_equal(first[rate], again[rate])
        assert len(first[rate]) == int(np.floor(rate * 99 + 0.5))
        assert set(first[rate]) <= set(candidates) and len(set(first[rate])) == len(first[rate])
    for low, high in zip(RATES, RATES[1:], strict=False):
        assert set(first[low]) <= set(first[high])
    assert not np.array_equal(first[0.6], other[0.6])
    assert len(first[0.0]) == 0


def test_noise_of_a_row_does_not_depend_on_how_many_rows_are_drawn():
    small = corruption.noise_draw((5, 3, 4), 0.5, seed=2)
    large = corruption.noise_draw((9, 3, 4), 0.5, seed=2)
    torch.testing.assert_close(large[:5], small, rtol=0, atol=0)
    assert 0.3 < float(large.std()) < 0.7


def test_fills_touch_valid_steps_only():
    values = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2) + 1  # (N=2, T=3, D=2)
    lengths = torch.tensor([2, 3])
    values[0, 2] = 0  # end padding of row 0
    mean = corruption.train_mean(values, lengths, torch.tensor([0, 1]))
    # valid steps: row 0 t<2 and row 1 t<3 → 5 steps
    expected = (values[0, :2].sum(0) + values[1].sum(0)) / 5
    torch.testing.assert_close(mean, expected)
    filled = corruption.mean_fill(values, lengths, mean)
    torch.testing.assert_close(filled[0, :2], mean.expand(2, 2))
    assert filled[0, 2].abs().sum() == 0 and torch.equal(filled[1], mean.expand(3, 2))
    noisy = corruption.add_noise(values, lengths, torch.ones_like(values))
    assert torch.equal(noisy[0, :2], values[0, :2] + 1) and noisy[0, 2].abs().sum() == 0
    assert torch.equal(corruption.zero_fill(values), torch.zeros_like(values))
    pooled = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 0.0]])
    torch.testing.assert_close(corruption.train_mean(pooled, None, torch.tensor([0, 1])), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(corruption.fill("mean", pooled, None, mean=torch.tensor([2.0, 4.0])),
                               torch.tensor([[2.0, 4.0]] * 3))


@pytest.mark.parametrize("rates", [(), (0.2, 0.2), (0.4, 0.2), (0.0, 1.0), (-0.1,), (float("nan"),)])
def test_bad_rates_are_refused(rates):
    with pytest.raises(UserError, match="rate"):
        corruption.check_rates(rates)


def test_noise_std_goes_with_noise_only():
    with pytest.raises(UserError, match="noise-std"):
        StressConfig("m1", RATES, "noise")
    with pytest.raises(UserError, match="noise only"):
        StressConfig("m1", RATES, "zero", 0.5)


# -- a store with fitted, probed runs --------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """sim1 (300 rows): the frozen inputs (`inputs`, seed 0) and late fusion (seeds 0, 1), probed."""
    store = Store.open(tmp_path_factory.mktemp("stress") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=300))
    inputs = {"m1": None, "m2": None}
    frozen = fit_runs(store, "inputs", "sim1", inputs, METHODS.get("inputs").Config(), [0])[0].run
    late = [o.run for o in fit_runs(store, "late-fusion", "sim1", inputs, LATE_FUSION, [0, 1])]
    for run in (frozen, *late):
        save_probes(store, run, probe_run(store, run))
    return store, frozen, late


def _clean_scores(store, run_id):
    with duckdb.connect(str(store.results_db), read_only=True) as conn:
        rows = conn.execute("SELECT component, label, metric, value, n_test FROM probes WHERE run_id = ?",
                            [run_id]).fetchall()
    return {(c, lab, m): (v, n) for c, lab, m, v, n in rows}


def _by_rate(outcome):
    found: dict[float, dict[tuple, tuple]] = {}
    for row in outcome.rows:
        found.setdefault(row.rate, {})[(row.component, row.label, row.metric)] = (row.value, row.n_test)
    return found


def test_rate_zero_is_the_clean_probe_and_the_test_set_is_constant(fitted):
    store, frozen, late = fitted
    run = late[0]
    outcome = stress_run(store, run, StressConfig("m1", RATES, "zero", seed=3))
    by_rate = _by_rate(outcome)
    clean = _clean_scores(store, run.run_id)
    assert by_rate[0.0] == clean  # every score, exactly: the numbers `mmpipe probe` wrote
    n_test = int((store.manifest("sim1").table["split"] == "test").sum())
    assert outcome.n_candidates == n_test
    assert outcome.corrupted == {rate: int(np.floor(rate * n_test + 0.5)) for rate in RATES}
    for rate in RATES:  # the same scored rows (and so labels) at every rate
        assert set(by_rate[rate]) == set(clean)
        assert {key: n for key, (_, n) in by_rate[rate].items()} == {key: n for key, (_, n) in clean.items()}
    # zeros in 60 % of m1's test rows cost the fused representation the shared label
    assert by_rate[0.6][("fused", "y_s", "accuracy")][0] < by_rate[0.0][("fused", "y_s", "accuracy")][0] - 0.1


def test_a_representation_without_the_modality_is_flat(fitted):
    """The frozen inputs' h_m2 never sees m1: every score of it is the same at every rate of m1's
    corruption, while h_m1 loses what m1 carried."""
    store, frozen, _ = fitted
    for mode, std in (("zero", None), ("mean", None), ("noise", 2.0)):
        by_rate = _by_rate(stress_run(store, frozen, StressConfig("m1", RATES, mode, std), labels=["y_s", "y_m1"]))
        for key, value in by_rate[0.0].items():
            if key[0] == "h_m2":
                assert all(by_rate[rate][key] == value for rate in RATES), (mode, key)
        assert by_rate[0.6][("h_m1", "y_m1", "mse")][0] > 2 * by_rate[0.0][("h_m1", "y_m1", "mse")][0] + 0.01, mode


def test_a_corrupted_row_is_the_same_at_every_rate(fitted):
    """Nested rows, and a row corrupted at 0.2 is corrupted the same way at 0.6 (its own noise)."""
    store, frozen, _ = fitted
    data = run_features(store, frozen)
    clean = {k: v.numpy() for k, v in frozen.components().items()}
    candidates = np.flatnonzero(frozen.valid() & data.manifest.split_mask("test"))
    versions = corrupted_versions(load_model(frozen), data, clean, StressConfig("m1", (0.2, 0.6), "noise", 1.0),
                                  candidates)
    moved = {rate: np.flatnonzero((arrays["h_m1"] != clean["h_m1"]).any(axis=1))
             for rate, (_, arrays) in versions.items()}
    assert [len(moved[r]) for r in (0.2, 0.6)] == [versions[0.2][0], versions[0.6][0]]
    assert set(moved[0.2]) < set(moved[0.6])
    np.testing.assert_array_equal(versions[0.2][1]["h_m1"][moved[0.2]], versions[0.6][1]["h_m1"][moved[0.2]])
    np.testing.assert_array_equal(versions[0.6][1]["h_m2"], clean["h_m2"])  # h_m2 never sees m1
    with pytest.raises(UserError, match="cannot be stress-tested"):  # a checkpoint that is not the run's
        corrupted_versions(load_model(frozen), data, {**clean, "h_m1": clean["h_m1"] + 1},
                           StressConfig("m1", (0.2,)), candidates)


def test_probes_are_fitted_once_on_clean_data(fitted, monkeypatch):
    """Four rates, one fit per probe: the same fits as one `mmpipe probe`, on the same clean rows."""
    store, _, late = fitted
    calls: list[int] = []
    real = probes.fit_categorical

    def counted(x_train, y_train, x_val, y_val, *args, **kwargs):
        calls.append(len(x_train))
        return real(x_train, y_train, x_val, y_val, *args, **kwargs)

    monkeypatch.setattr(probes, "fit_categorical", counted)
    probe_run(store, late[0])
    once = list(calls)
    calls.clear()
    stress_run(store, late[0], StressConfig("m2", RATES, "mean"))
    assert calls == once and once


def test_refusals(fitted):
    store, frozen, late = fitted
    with pytest.raises(UserError, match="--modality m3 is not one of its inputs"):
        stress_run(store, frozen, StressConfig("m3", RATES))
    with pytest.raises(UserError, match="no missing-input rule of its own"):
        stress_run(store, late[0], StressConfig("m1", RATES, "drop"))
    with pytest.raises(UserError, match="no label 'nope'"):
        stress_run(store, late[0], StressConfig("m1", RATES), labels=["nope"])


# -- every registered method, pooled and sequence inputs -------------------------------------------
@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("registry-stress") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=240))
    return load_features(store, "sim1", {"m1": None, "m2": None})


def _data_for(name, pooled):
    """As tests/test_methods_registry.py gives each method its inputs."""
    cls = METHODS.get(name)
    if cls.modality_count[0] >= 3:
        return _as_sequences(three_modalities(pooled))
    return _as_sequences(pooled) if "sequence" in cls.input_kinds else pooled


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_takes_the_stress(name, pooled):
    data = _data_for(name, pooled)
    model, _ = METHODS.get(name).fit(data, FAST[name], 0)
    clean = {k: v.numpy() for k, v in model.transform(data.values, data.lengths).items()}
    candidates = np.flatnonzero(data.manifest.split_mask("test"))
    # the train mean: for sequences, over the valid steps, written at each valid step (one fill
    # here keeps the test fast; each fill's rule on sequences is checked above)
    versions = corrupted_versions(model, data, clean, StressConfig("m1", (0.0, 0.5), "mean"), candidates)
    count, at_zero = versions[0.0]
    assert count == 0 and all(np.array_equal(at_zero[k], clean[k]) for k in clean)
    count, half = versions[0.5]
    changed = np.zeros(len(data.valid), bool)
    for component, values in half.items():
        assert values.shape == clean[component].shape and np.isfinite(values).all()
        changed |= (values != clean[component]).any(axis=1)
    assert changed.any(), name  # the method reads m1
    assert set(np.flatnonzero(changed)) <= set(candidates)  # only test rows move
    assert count == corruption.corrupted_count(0.5, len(candidates))


class _MeanOfPresent(AdapterMethod):
    """Not registered: the mean of the present modalities' rows, z = mean_k x_k (its own missing
    rule: an absent modality leaves the mean of the others)."""

    name = "mean-of-present"
    Config = dataclasses.make_dataclass("Config", [], frozen=True)

    @classmethod
    def component_names(cls, modalities):
        return ("z",)

    @classmethod
    def fit(cls, data, config, seed, progress=None):
        return cls(), {}

    @classmethod
    def from_state(cls, config, dims, state):
        return cls()

    def transform(self, inputs, lengths=None):
        return {"z": torch.stack(list(inputs.values())).mean(0)}

    def transform_missing(self, inputs, lengths, missing):
        present = torch.stack([~missing.get(m, torch.zeros(len(v), dtype=torch.bool)) for m, v in inputs.items()])
        stacked = torch.stack(list(inputs.values()))  # (K, N, D)
        weights = present.float()[:, :, None]  # (K, N, 1)
        return {"z": (stacked * weights).sum(0) / weights.sum(0)}


def test_drop_uses_the_methods_own_rule(pooled):
    assert isinstance(_MeanOfPresent(), corruption.HandlesMissing)
    assert not issubclass(METHODS.get("late-fusion"), corruption.HandlesMissing)
    model = _MeanOfPresent()
    clean = {k: v.numpy() for k, v in model.transform(pooled.values).items()}
    candidates = np.flatnonzero(pooled.manifest.split_mask("test"))
    versions = corrupted_versions(model, pooled, clean, StressConfig("m1", (0.5,), "drop"), candidates)
    count, arrays = versions[0.5]
    moved = np.flatnonzero((arrays["z"] != clean["z"]).any(axis=1))
    assert len(moved) == count
    np.testing.assert_allclose(arrays["z"][moved], pooled.values["m2"][moved].numpy())  # m2 alone


# -- sequences in a store, the method's own prediction --------------------------------------------
def test_dlf_on_sequences_rate_zero_is_its_probe(tmp_path):
    write("mmsa-aligned", tmp_path / "data", "mosi")
    store = Store.open(tmp_path / "store", create=True)
    assert _cli(store, "ingest", "mosi", "--data-dir", str(tmp_path / "data")).exit_code == 0
    config = dataclasses.replace(FAST["dlf"], target="sentiment", minibatch_size=8, max_epochs=1)
    [outcome] = fit_runs(store, "dlf", "mosi", {"text": None, "audio": None, "vision": None}, config, [0])
    run = outcome.run
    save_probes(store, run, probe_run(store, run))
    stressed = stress_run(store, run, StressConfig("audio", (0.0, 0.5), "mean"))
    by_rate = _by_rate(stressed)
    assert by_rate[0.0] == _clean_scores(store, run.run_id)
    assert any(key[0] == "prediction" for key in by_rate[0.5])  # its own prediction, scored as it is
    assert by_rate[0.5] != by_rate[0.0]


# -- the command ----------------------------------------------------------------------------------
def _cli(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def _count(store, sql):
    result = _cli(store, "query", "--format", "json", sql)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_command_end_to_end_idempotent(fitted, tmp_path):
    store, frozen, late = fitted
    args = ["stress", "late-fusion", "--dataset", "sim1", "--modality", "m1", "--rates", "0,0.3,0.6", "--label", "y_s",
            "--component", "fused", "--plot", str(tmp_path / "plots")]
    first = _cli(store, *args)
    assert first.exit_code == 0, first.output
    assert "for 2 run(s)" in first.stdout and f"{tmp_path}/plots/stress-sim1-m1-zero_seed_0-y_s.png" in first.stdout
    assert (tmp_path / "plots" / "stress-sim1-m1-zero_seed_0-y_s.png").stat().st_size > 0
    where = "WHERE mode = 'zero' AND modality = 'm1' AND corruption_seed = 0"
    values = f"SELECT run_id, rate, component, label, metric, value FROM stress {where} ORDER BY ALL"
    before = _count(store, values)
    assert _cli(store, *args).exit_code == 0
    assert _count(store, values) == before  # replaced by the same numbers (the same rows), not duplicated
    more = _cli(store, "stress", late[0].run_id, "--modality", "m1", "--rates", "0.8", "--label", "y_s",
                "--component", "fused")
    assert more.exit_code == 0, more.output
    rates = _count(store, f"SELECT DISTINCT rate FROM stress {where} ORDER BY rate")
    assert [r["rate"] for r in rates] == [0.0, 0.3, 0.6, 0.8]  # a new rate adds, never removes
    summary = _count(store, "SELECT rate, mean, std, n_seeds FROM stress_summary WHERE component = 'fused' "
                            "AND label = 'y_s' AND metric = 'accuracy' AND mode = 'zero' ORDER BY rate")
    assert [(r["rate"], r["n_seeds"]) for r in summary] == [(0.0, 2), (0.3, 2), (0.6, 2), (0.8, 1)]
    clean = _count(store, "SELECT avg(p.value) AS mean FROM probes p JOIN runs r USING (run_id) "
                          "WHERE r.method = 'late-fusion' AND component = 'fused' AND label = 'y_s' "
                          "AND metric = 'accuracy'")
    assert summary[0]["mean"] == pytest.approx(clean[0]["mean"], abs=1e-12)
    report = _cli(store, "report", "--table", "stress", "--format", "markdown", "--label", "y_s")
    assert report.exit_code == 0, report.output
    assert "Stress: sim1, m1 zero, seed 0" in report.stdout and "y\\_s (Acc) ↑: 0.6" in report.stdout


@pytest.mark.parametrize("args, words", [
    (["late-fusion", "--dataset", "sim1", "--modality", "m9"], "no late-fusion run on sim1 took --modality m9"),
    (["late-fusion", "--dataset", "sim1", "--modality", "m1", "--rates", "0,1"], "[0, 1)"),
    (["late-fusion", "--dataset", "sim1", "--modality", "m1", "--rates", "0.4,0.2"], "strictly increase"),
    (["late-fusion", "--dataset", "sim1", "--modality", "m1", "--rates", "a"], "comma-separated"),
    (["dlf", "--dataset", "sim1", "--modality", "m1"], "no dlf run on sim1"),
    (["late-fusion", "--modality", "m1"], "--dataset"),
    (["late-fusion", "--dataset", "sim1", "--modality", "m1", "--mode", "drop"], "no missing-input rule"),
    (["late-fusion", "--dataset", "sim1", "--modality", "m1", "--mode", "noise"], "--noise-std"),
])
def test_command_refuses_in_one_line(fitted, args, words):
    store, _, _ = fitted
    before = store.results_db.stat().st_mtime_ns
    result = _cli(store, "stress", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], lines
    assert store.results_db.stat().st_mtime_ns == before


def test_a_results_db_from_before_the_stress_table_reads(fitted, tmp_path):
    """A file without the stress table (an older mmpipe's) reads with an empty one; the next write adds it."""
    store, frozen, _ = fitted
    shutil.copytree(store.root, tmp_path / "old")
    old = Store.open(tmp_path / "old")
    run = old.run(frozen.run_id)
    with duckdb.connect(str(old.results_db)) as conn:
        conn.execute("DROP VIEW stress_summary")
        conn.execute("DROP TABLE stress")
    assert _count(old, "SELECT count(*) AS n FROM stress_summary")[0]["n"] == 0
    outcome = stress_run(old, run, StressConfig("m2", (0.0, 0.5)), ProbeConfig(), labels=["y_s"])
    save_stress(old, run, StressConfig("m2", (0.0, 0.5)).key(run.run_id), outcome.rows)
    assert _count(old, "SELECT count(*) AS n FROM stress_summary")[0]["n"] == len(outcome.rows)
