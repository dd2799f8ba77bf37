"""Bad values for config fields and command-line options are refused before any work: exit 2, one
line on stderr naming where the value came from, the field and its range, no traceback, and the
store byte for byte as it was. A fit that diverges stops at the epoch where a loss turned NaN/inf
and publishes nothing."""

import hashlib
import json

import pytest
import torch
from typer.testing import CliRunner

from mmpipe.adapters import METHODS
from mmpipe.adapters.data import load_features
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.fit import fit_runs
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

runner = CliRunner()
FAST = ["--seeds", "0", "--set", "max_epochs_shared=2", "--set", "max_epochs_private=2", "--set",
        "max_epochs_joint=2", "--set", "minibatch_size=64", "--set", "hidden=8"]
BASELINE = ["--seeds", "0", "--set", "max_epochs=2", "--set", "minibatch_size=64", "--set", "hidden=8",
            "--set", "sizes=2,2,2"]


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "s"
    assert runner.invoke(app, ["--store", str(root), "simulate", "sim1", "--n", "200"]).exit_code == 0
    return root


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else None


def _refused(root, args, message):
    before = _hashes(root)
    result = runner.invoke(app, ["--store", str(root), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert message in lines[0], lines[0]
    assert _hashes(root) == before


def _config(tmp_path, data):
    path = tmp_path / "c.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["--set", "lr=-1"], "--set lr=-1: lr must be > 0 (a finite float)"),
    (["--set", "lr=nan"], "--set lr=nan: lr must be > 0 (a finite float)"),
    (["--set", "temperature=0"], "--set temperature=0: temperature must be > 0 (a finite float)"),
    (["--set", "rank=0"], "--set rank=0: rank must be in [1, 65536] (an integer), or none"),
    (["--set", "rank=1000000"], "--set rank=1000000: rank must be in [1, 65536]"),
    (["--set", "rank=11"], "multiloreft: rank=11 is wider than the narrowest input (m1: 10); set rank to at most 10"),
    (["--set", "minibatch_size=-5"], "--set minibatch_size=-5: minibatch_size must be in [2, 1048576]"),
    (["--set", "minibatch_size=141"], "minibatch_size=141 is larger than the train split of sim1 (140 rows)"),
    (["--set", "max_epochs_joint=-1"], "--set max_epochs_joint=-1: max_epochs_joint must be in [0, 1000000]"),
    (["--set", "max_epochs_shared=0", "--set", "max_epochs_private=0", "--set", "max_epochs_joint=0"],
     "max_epochs_shared, max_epochs_private, max_epochs_joint are all 0: nothing would be trained"),
    (["--set", "fixed_weights=1,nan,1"], "fixed_weights must be three values, each >= 0 (finite floats)"),
    (["--set", "device=tpu9"], "--set device=tpu9: device must be one of auto, cpu, cuda, cuda:N"),
    (["--seeds", "-1"], "--seeds -1: a seed must be in [0, 4294967295]"),
    (["--seeds", str(2**32)], "a seed must be in [0, 4294967295]"),
    (["--seeds", ",".join(map(str, range(1001)))], "--seeds must be at least 1 and at most 1000 (runs), not 1001"),
    (["--jobs", "0"], "--jobs 0: must be in [1, 256] worker processes"),
])
def test_fit_refuses_bad_values_before_any_work(sim_root, args, message):
    _refused(sim_root, ["fit", "multiloreft", "--dataset", "sim1", *FAST, *args], message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_refuses_an_unavailable_device_before_loading(sim_root):
    _refused(sim_root, ["fit", "multiloreft", "--dataset", "sim1", *FAST, "--set", "device=cuda:7"],
             "device cuda:7: CUDA is not available on this machine")


@pytest.mark.parametrize("method, args, message", [
    ("contrastive", ["--set", "sizes=0,1,1"], "sizes must be two or more values, each in [1, 65536] (integers)"),
    ("contrastive", ["--set", "sizes=11,1,1"], "a subspace is wider than the widest input (10)"),
    ("apollo", ["--set", "latent_noise=-1"], "--set latent_noise=-1: latent_noise must be >= 0"),
    ("drimu", ["--set", "gamma=inf"], "--set gamma=inf: gamma must be >= 0 (a finite float)"),
    ("cross-attention", ["--set", "heads=4"], "heads=4 must divide the width D = 6"),
])
def test_baselines_refuse_bad_values(sim_root, method, args, message):
    _refused(sim_root, ["fit", method, "--dataset", "sim1", *BASELINE, *args], message)


@pytest.mark.parametrize("data, message", [
    ({"lr": "0.1"}, "lr='0.1': lr must be > 0 (a finite float)"),
    ({"staged": 1}, "staged=1: staged must be true or false"),
    ({"hidden": True}, "hidden=true: hidden must be in [1, 65536] (an integer)"),
    ({"lr": None}, "lr=none: lr must be > 0"),
    ('{"temperature": NaN}', "temperature=nan: temperature must be > 0"),
    ([1, 2], "must hold a JSON object of field: value"),
])
def test_fit_config_file_values_are_checked(sim_root, tmp_path, data, message):
    _refused(sim_root, ["fit", "multiloreft", "--dataset", "sim1", *FAST, "--config", _config(tmp_path, data)],
             message)


def test_fit_config_file_that_is_a_directory(sim_root, tmp_path):
    _refused(sim_root, ["fit", "multiloreft", "--dataset", "sim1", *FAST, "--config", str(tmp_path)],
             "is a directory; give a JSON file of field: value")


@pytest.mark.parametrize("args, message", [
    (["--n", "6"], "--n 6: sim1: the val split has 1 row, fewer than the 2 every split needs"),
    (["--n", "-5"], "--n -5: n must be in [1, 10000000] (an integer)"),
    (["--n", str(10**12)], "n must be in [1, 10000000]"),
    (["--seed", "-1"], "--seed -1: seed must be in [0, 4294967295] (an integer)"),
    (["--set", "shared_noise_var=-1"], "--set shared_noise_var=-1: shared_noise_var must be >= 0 (a finite float)"),
    (["--set", "train_frac=0.9"], "split fractions must satisfy"),
    (["--set", "w_low=2"], "--set w_low=2: sim1: w_low must be <= w_high, not 2 > 1"),
])
def test_simulate_refuses_bad_values_and_writes_nothing(tmp_path, args, message):
    _refused(tmp_path / "fresh", ["simulate", "sim1", *args], message)
    assert not (tmp_path / "fresh").exists()


def test_simulate_sim2_gamma_pairs(tmp_path):
    _refused(tmp_path / "s", ["simulate", "sim2", "--set", "z2_gamma=0,1"], "z2_gamma must be two values, each > 0")
    _refused(tmp_path / "s", ["simulate", "sim2", "--set", "z2_gamma=1"], "2 comma-separated values are needed")


@pytest.mark.parametrize("args, message", [
    (["--set", "max_seconds=-1"], "--set max_seconds=-1: max_seconds must be > 0 (a finite float), or none"),
    (["--batch-size", "0"], "--batch-size 0: batch_size must be in [1, 65536] (an integer)"),
    (["--workers", "-1"], "--workers -1: num_workers must be in [0, 256] (an integer)"),
    (["--chunk-rows", "0"], "--chunk-rows 0: chunk_rows must be in [1, 10000000] (an integer), or none"),
    (["--layers", "-1"], "--layers -1: layers must be a list of values, each >= 0 (integers)"),
    (["--device", "tpu9"], "--device tpu9: device must be one of auto, cpu, cuda, cuda:N"),
    (["--set", "train_frac=nan"], "--set train_frac=nan: train_frac must be in (0, 1) (a finite float)"),
])
def test_extract_refuses_bad_options_before_reading_media(tmp_path, args, message):
    # data_dir does not exist: every refusal comes before the dataset is read or the store created
    _refused(tmp_path / "fresh", ["extract", "cremad", "--encoder", "wav2vec2", "--data-dir", str(tmp_path / "none"),
                                  *args], message)
    assert not (tmp_path / "fresh").exists()


def test_probe_refuses_k_shot_out_of_range_and_above_a_class(sim_root):
    fitted = runner.invoke(app, ["--store", str(sim_root), "fit", "multiloreft", "--dataset", "sim1", *FAST])
    assert fitted.exit_code == 0, fitted.output
    _refused(sim_root, ["probe", "--all", "--k-shot", "0"], "--k-shot 0: k_shot must be a list of values, each in")
    _refused(sim_root, ["probe", "--all", "--k-shot", "1000"], "k_shot 1000: class ")


@pytest.mark.parametrize("args, message", [
    (["--seeds", str(10**9)], "--seeds must be at least 1 and at most 1000 (runs), not 1000000000"),
    (["--max-epochs", "0"], "--max-epochs 0: must be in [1, 1000000]"),
    (["--n", "200"], "--n 200 leaves 140 train rows of sim1, fewer than one minibatch of multiloreft (256); "
                     "give --n 366 or more"),
])
def test_reproduce_refuses_bad_options_and_writes_nothing(tmp_path, args, message):
    _refused(tmp_path / "fresh", ["reproduce", "table1", *args], message)
    assert not (tmp_path / "fresh").exists()


def test_demo_refuses_a_minibatch_larger_than_its_train_split(tmp_path):
    _refused(tmp_path / "fresh", ["demo", "--n", "300", "--seeds", "0"],
             "minibatch_size=256 is larger than the train split of sim1 with --n 300 (210 rows)")


# -- divergence ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method, args, message", [
    ("multiloreft", FAST + ["--set", "lr=1e30"], "multiloreft diverged: loss mi is nan at epoch 1 of stage shared"),
    ("drimu", BASELINE + ["--set", "lr=1e30"], "drimu diverged: loss train is nan at epoch 1 of stage train"),
    ("late-fusion", BASELINE + ["--set", "lr=1e30"], "late-fusion diverged: loss train is nan at epoch 1"),
])
def test_a_diverged_fit_is_never_published(sim_root, method, args, message):
    _refused(sim_root, ["fit", method, "--dataset", "sim1", *args], message)


def test_fit_one_refuses_components_with_nan(sim_root, monkeypatch):
    """The last guard: whatever the loops saw, NaN components are not published."""
    cls = METHODS.get("inputs")

    def poisoned(self, inputs, lengths=None):
        return {k: torch.full_like(v, float("nan")) for k, v in original(self, inputs, lengths).items()}

    original = cls.transform
    monkeypatch.setattr(cls, "transform", poisoned)
    store = Store.open(sim_root)
    before = _hashes(sim_root)
    with pytest.raises(UserError, match=r"inputs diverged: component \S+ is NaN or infinite in 200 of 200 valid rows"):
        fit_runs(store, "inputs", "sim1", {"m1": None, "m2": None}, cls.Config(), [0])
    assert _hashes(sim_root) == before
    assert load_features(store, "sim1", {"m1": None, "m2": None}).values["m1"].isfinite().all()
