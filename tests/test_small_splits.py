"""The smallest data every command accepts: each split needs MIN_SPLIT_ROWS rows (simulate refuses
fewer before writing; fit refuses a smaller train or val split naming it), and at that size fit and
probe work end to end; a silhouette is left out where it is undefined instead of crashing."""

import numpy as np
import pytest
from typer.testing import CliRunner

from mmpipe.adapters.data import load_features
from mmpipe.evaluate import metrics
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.datasets.splits import split_counts
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import MIN_SPLIT_ROWS

runner = CliRunner()


def _smallest_n() -> int:
    config = Sim1Config()
    return next(n for n in range(1, 100)
                if min(split_counts(n, config.train_frac, config.val_frac).values()) >= MIN_SPLIT_ROWS)


def test_simulate_refuses_one_row_below_the_smallest_size_and_accepts_it(tmp_path):
    n = _smallest_n()
    refused = runner.invoke(app, ["--store", str(tmp_path / "s"), "simulate", "sim1", "--n", str(n - 1)])
    assert refused.exit_code == 2 and "every split needs" in refused.output and not (tmp_path / "s").exists()
    assert runner.invoke(app, ["--store", str(tmp_path / "s"), "simulate", "sim1", "--n", str(n)]).exit_code == 0


def test_fit_and_probe_work_on_the_smallest_splits(tmp_path):
    root = str(tmp_path / "s")
    n = 20  # 14 / 3 / 3 rows: a 3-row test split can hold three classes of y_s
    assert runner.invoke(app, ["--store", root, "simulate", "sim1", "--n", str(n)]).exit_code == 0
    fit = runner.invoke(app, ["--store", root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0",
                              "--set", "max_epochs_shared=2", "--set", "max_epochs_private=2",
                              "--set", "max_epochs_joint=2", "--set", "minibatch_size=14", "--set", "hidden=8"])
    assert fit.exit_code == 0, fit.output
    probe = runner.invoke(app, ["--store", root, "probe", "--all"])
    assert probe.exit_code == 0 and "Traceback" not in probe.output, probe.output


def test_a_val_split_at_the_minimum_loads_and_below_it_is_refused(store):
    simulate(store, "sim1", Sim1Config(n=40, val_frac=0.05))  # 28 / 2 / 10: at the minimum
    assert len(load_features(store, "sim1", {"m1": None, "m2": None}).split_index["val"]) == MIN_SPLIT_ROWS
    with pytest.raises(UserError, match=r"the val split has 1 row, fewer than the 2 every split needs"):
        Sim1Config(n=20, val_frac=0.05)  # refused as a config already: 14 / 1 / 5


@pytest.mark.parametrize("labels, defined", [([0, 1, 2], False), ([0, 0, 1], True), ([1, 1, 1], False)])
def test_silhouette_is_undefined_when_every_row_is_its_own_class(labels, defined):
    x = np.random.default_rng(0).normal(size=(len(labels), 2))
    value = metrics.silhouette(x, np.array(labels), max_rows=100, seed=0)
    assert (value is not None) == defined
