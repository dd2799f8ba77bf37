"""simseq: its generative process holds what its docstring says, it is stored as sequence entries,
and a pooled method fits, probes and reports on it end to end (issue 14, point 6)."""

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from typer.testing import CliRunner

from mmpipe.adapters.data import load_features
from mmpipe.evaluate import metrics
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets import DATASETS, Simulation
from mmpipe.pipeline.datasets.simseq import FACTORS, Simseq, SimseqConfig
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError

runner = CliRunner()


@pytest.fixture(scope="module")
def generated():
    config = SimseqConfig()
    return config, *Simseq().generate(config)


def test_registered_as_a_simulation_of_three_sequence_modalities(generated):
    config, manifest, arrays = generated
    assert issubclass(DATASETS.get("simseq"), Simulation)
    assert manifest.modality_names == ("text", "audio", "vision") == tuple(arrays)
    for (name, generated), dim, low, high in zip(arrays.items(), config.dims, config.min_steps,
                                                 config.max_steps, strict=True):
        values, lengths = generated.values, generated.lengths
        assert len(generated) == len(manifest), name
        assert values.shape == (config.n, high, dim) and values.dtype == np.float32, name
        assert lengths.min() == low and lengths.max() == high, name  # variable lengths, the whole range
        padding = np.arange(high)[None, :] >= lengths[:, None]
        assert not values[padding].any() and np.abs(values[~padding]).sum(-1).min() > 0, name
    owners = {s.name: (s.kind, s.owner, s.scale) for s in manifest.labels}
    assert owners == {"y_all": ("categorical", "shared", "binary"), "y_ta": ("continuous", "joint", ""),
                      "y_tv": ("continuous", "joint", ""), "y_av": ("continuous", "joint", ""),
                      "y_text": ("continuous", "text", ""), "y_audio": ("categorical", "audio", "binary"),
                      "y_vision": ("continuous", "vision", ""), "sentiment": ("continuous", "joint", "sentiment")}
    assert set(manifest.table["split"]) == {"train", "val", "test"}
    again = Simseq().generate(config)[1]
    assert all(np.array_equal(again[k].values, arrays[k].values) for k in arrays)  # seeded: the same arrays


def test_sentiment_is_on_the_msa_scale_with_exact_zeros(generated):
    config, manifest, _ = generated
    s = manifest.table["sentiment"].to_numpy()
    assert s.min() >= -3 and s.max() <= 3
    assert np.allclose(s * config.annotators, np.round(s * config.annotators))  # steps of 1/annotators
    assert 0.03 < (s == 0).mean() < 0.15  # has0 and non0 differ
    assert not np.signbit(s[s == 0]).any()


def test_transient_factors_live_in_a_few_steps_only():
    """Without noise, a modality's steps are all equal except where a transient factor bursts."""
    config = SimseqConfig(n=200, noise_std=0.0)
    _, arrays = Simseq().generate(config)
    for name, generated in arrays.items():
        values, lengths = generated.values, generated.lengths
        bursting = [j for j in config.transient if name in FACTORS[j]]
        counts = []
        for row in range(config.n):
            steps = values[row, :lengths[row]]
            base = np.median(steps, axis=0)  # the persistent part: most steps carry only it
            counts.append(int((np.abs(steps - base).max(axis=1) > 1e-5).sum()))
        assert max(counts) == config.burst_steps * len(bursting), name  # vision: two bursts, text one, audio none


def test_mean_pooling_dilutes_the_transient_factors(generated):
    """The known structure: pooled linear read-outs recover persistent factors, not transient ones."""
    config, manifest, arrays = generated
    pooled = np.hstack([a.values.sum(1) / a.lengths[:, None] for a in arrays.values()])
    train, test = manifest.split_mask("train"), manifest.split_mask("test")

    def r2(label):
        y = manifest.table[label].to_numpy(dtype=float)
        prediction = RidgeCV().fit(pooled[train], y[train]).predict(pooled[test])
        return 1 - np.mean((prediction - y[test]) ** 2) / np.var(y[test])

    assert set(config.transient) == {"tv", "vision"}
    assert min(r2("y_ta"), r2("y_av"), r2("y_text")) > 0.9
    assert max(r2("y_tv"), r2("y_vision")) < 0.75


def test_config_relations_are_refused_in_one_line():
    for overrides, word in ((["min_steps=30,12,10"], "min_steps"), (["burst_steps=9"], "burst_steps"),
                            (["transient=tv,tv"], "transient"), (["n=5"], "split")):
        with pytest.raises(UserError, match=word):
            apply_overrides(SimseqConfig(), overrides)


def test_simulate_writes_sequence_entries(store):
    result = simulate(store, "simseq", SimseqConfig(n=120))
    assert sorted(result.created) == ["simseq.audio.simulated", "simseq.text.simulated", "simseq.vision.simulated"]
    entry = result.entries["audio"]
    assert entry.shape == (120, 32, 12) and entry.lengths().min() >= 12
    assert simulate(store, "simseq", SimseqConfig(n=120)).created == []  # idempotent
    data = load_features(store, "simseq", dict.fromkeys(("text", "audio", "vision")), pooling="mean")
    assert data.kinds == {"text": "pooled", "audio": "pooled", "vision": "pooled"}
    assert data.dims == {"text": 16, "audio": 12, "vision": 8}


def test_simulate_fit_probe_report_end_to_end(store, tmp_path):
    def run(*args):
        result = runner.invoke(app, ["--store", str(store.root), *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("simulate", "simseq", "--n", "600")
    run("fit", "late-fusion", "--dataset", "simseq", "--input", "text=simulated", "--input", "audio=simulated",
        "--input", "vision=simulated", "--pool", "mean", "--seeds", "0", "--set", "target=sentiment",
        "--set", "size=input", "--set", "max_epochs=30")
    run("probe", "--all")
    rows = run("query", "SELECT label, metric, value FROM probes WHERE component = 'fused' ORDER BY 1, 2",
               "--format", "csv").splitlines()[1:]
    fused = {(r.split(",")[0], r.split(",")[1]): float(r.split(",")[2]) for r in rows}
    assert {m for lab, m in fused if lab == "sentiment"} == {"mse", *metrics.MSA, metrics.ACCURACY_GE0}
    assert {m for lab, m in fused if lab == "y_all"} == {"accuracy", "f1", "silhouette"}
    assert fused[("sentiment", "corr")] > 0.6 and fused[("sentiment", "acc2_non0")] > 0.7
    out = tmp_path / "report.md"
    run("report", "--table", "msa", "--format", "markdown", "--out", str(out))
    text = out.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [
        f"simseq: {metrics.display(m)} {metrics.metric(m).arrow}" for m in metrics.MSA]
    assert "late-fusion" in text and "Protocol, simseq Acc-7" in text and "fused component (owner joint)" in text
