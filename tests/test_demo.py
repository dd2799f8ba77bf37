"""`mmpipe demo` end to end with small settings, and parallel seeds."""

import dataclasses

import torch
from typer.testing import CliRunner

from mmpipe.adapters.methods.multiloreft import MultiLoReFTConfig
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.fit import fit_runs
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.root import Store

SMALL = ["--set", "max_epochs_shared=2", "--set", "max_epochs_private=2", "--set", "max_epochs_joint=3",
         "--set", "minibatch_size=64", "--set", "hidden=8"]


def test_demo_end_to_end(tmp_path):
    result = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "demo", "--n", "400", "--seeds", "0,1",
                                      "--jobs", "1", "--out", str(tmp_path / "out"), *SMALL])
    assert result.exit_code == 0, result.output
    for step in ("[1/4] simulating", "[2/4] fitting", "[3/4] probing", "[4/4] writing"):
        assert step in result.output
    assert "ours vs the paper" in result.output and "1.000 ± 0.000" in result.output  # the paper's z_s row
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert "\\toprule" in tex and "paper" in tex
    plots = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert any("pca" in p for p in plots) and any("rank" in p for p in plots)
    store = Store.open(tmp_path / "store")
    assert len(store.runs("multiloreft")) == 2
    rows = store.results_db.exists()
    assert rows
    again = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "demo", "--n", "400", "--seeds", "0,1",
                                     "--jobs", "1", "--out", str(tmp_path / "out"), *SMALL])
    assert again.exit_code == 0 and again.output.count("already fitted") == 2


def test_parallel_seeds_match_sequential_fits(tmp_path):
    config = dataclasses.replace(MultiLoReFTConfig(device="cpu"), max_epochs_shared=2, max_epochs_private=2,
                                 max_epochs_joint=2, minibatch_size=64, hidden=8)
    results = {}
    for jobs in (1, 2):
        store = Store.open(tmp_path / f"jobs{jobs}", create=True)
        simulate(store, "sim1", Sim1Config(n=300))
        outcomes = fit_runs(store, "multiloreft", "sim1", {"m1": None, "m2": None}, config, [0, 1], jobs=jobs)
        results[jobs] = [o.run for o in outcomes]
    for sequential, parallel in zip(results[1], results[2], strict=True):
        assert sequential.fingerprint == parallel.fingerprint
        assert torch.equal(sequential.components(["fused"])["fused"], parallel.components(["fused"])["fused"])
