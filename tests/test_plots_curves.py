"""`mmpipe plot RUN --curves` and `mmpipe fit --tensorboard DIR` (evaluate/plots_curves.py,
pipeline/tensorboard.py) on a small MultiLoReFT run fitted through the CLI: the figure's series are
the record's curve points, the TensorBoard log holds the same numbers, and the refusals are one line
with exit 2 (a run without curves; tensorboard not installed; a log directory that is a file)."""

from __future__ import annotations

import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmpipe.adapters.curves import read_curves
from mmpipe.evaluate.plots_curves import curve_series
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.evalruns import publish_synthetic

runner = CliRunner()
FAST = ["--set", "device=cpu", "--set", "patience=2", "--set", "joint_patience=2", "--set", "max_epochs_shared=2",
        "--set", "max_epochs_private=2", "--set", "max_epochs_joint=3", "--set", "minibatch_size=32",
        "--set", "hidden=8"]


def invoke(root, *args, code=0):
    result = runner.invoke(app, ["--store", str(root), *args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A store with one MultiLoReFT run on a small Simulation I."""
    root = tmp_path_factory.mktemp("curves_cli") / "store"
    invoke(root, "simulate", "sim1", "--n", "300")
    invoke(root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", *FAST)
    [run] = Store.open(root).runs("multiloreft")
    return root, run


def test_plot_curves_draws_the_records_points(fitted, tmp_path):
    root, run = fitted
    invoke(root, "plot", run.run_id, "--curves", "--out", str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [f"{run.run_id}-curves.png"]
    Image.open(tmp_path / f"{run.run_id}-curves.png").verify()
    points = read_curves(run.record.history)
    series = curve_series(points)
    assert [s.stage for s in series if s.split == "val" and s.term == "mi"] == ["shared", "private", "joint"]
    for s in series:  # every point drawn once, in epoch order, as recorded
        assert list(s.values) == [p.value for p in sorted(points, key=lambda p: p.epoch)
                                  if (p.stage, p.split, p.term) == (s.stage, s.split, s.term)]
    assert sum(len(s.values) for s in series) == len(points)
    assert any(s.split == "weight" for s in series)  # GradNorm's weights: their own row
    invoke(root, "plot", run.run_id, "--curves", "--out", str(tmp_path / "pdf"), "--format", "pdf")
    assert (tmp_path / "pdf" / f"{run.run_id}-curves.pdf").read_bytes()[:5] == b"%PDF-"
    # without --curves the curves come with the run's other figures
    invoke(root, "plot", run.run_id, "--out", str(tmp_path / "all"))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == sorted(
        f"{run.run_id}-{kind}.png" for kind in ("pca", "ranks", "curves"))


def test_a_run_without_curves_is_refused_in_one_line(store, tmp_path):
    from tests.evalruns import simulate_sim1

    version = simulate_sim1(store, n=300).manifest_version
    old = publish_synthetic(store, version)  # a record as a fit before curves were recorded
    result = invoke(store.root, "plot", old.run_id, "--curves", "--out", str(tmp_path), code=2)
    assert result.output.strip().splitlines() == [
        f"mmpipe: error: run {old.run_id} records no training curves: its method trains nothing, or it was fitted "
        "before mmpipe recorded them (a fit into a new store records them)"]


def test_the_tensorboard_log_holds_the_curves(fitted, tmp_path):
    pytest.importorskip("tensorboard")  # optional: `pip install tensorboard`
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, run = fitted
    logs = tmp_path / "tb"
    args = ("fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", *FAST, "--tensorboard", str(logs))
    result = invoke(root, *args)  # the run is fitted already: its log is written from the record
    assert f"{run.run_id}: TensorBoard log {logs / run.run_id}" in result.output
    again = invoke(root, *args)  # an existing log is left as it is
    assert "no TensorBoard log written" in again.output and len(list((logs / run.run_id).iterdir())) == 1
    events = EventAccumulator(str(logs / run.run_id))
    events.Reload()
    points = read_curves(run.record.history)
    assert sorted(events.Tags()["scalars"]) == sorted({f"{p.stage}/{p.split}/{p.term}" for p in points})
    for p in points:
        [logged] = [e for e in events.Scalars(f"{p.stage}/{p.split}/{p.term}") if e.step == p.epoch]
        assert logged.value == pytest.approx(p.value, rel=1e-6)  # TensorBoard stores float32


def test_tensorboard_refusals_come_before_any_fit(fitted, tmp_path, monkeypatch):
    root, _ = fitted
    a_file = tmp_path / "file"
    a_file.write_text("")
    args = ("fit", "multiloreft", "--dataset", "sim1", "--seeds", "5", *FAST)
    result = invoke(root, *args, "--tensorboard", str(a_file / "logs"), code=2)
    assert f"--tensorboard {a_file / 'logs'}: {a_file} is a file, not a directory" in result.output
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    result = invoke(root, *args, "--tensorboard", str(tmp_path / "logs"), code=2)
    assert "--tensorboard needs the tensorboard package" in result.output
    assert [r.record.seed for r in Store.open(root).runs("multiloreft")] == [0]
