import os

import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets import DATASETS
from mmpipe.store.root import Store

runner = CliRunner()


def _run(*args, store=None):
    prefix = ["--store", str(store)] if store is not None else []
    return runner.invoke(app, [*prefix, *args])


def _snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_simulate_then_rerun_is_a_no_op(tmp_path):
    root = tmp_path / "s"
    first = _run("simulate", "sim1", "--n", "400", "--seed", "2", store=root)
    assert first.exit_code == 0, first.output
    assert "sim1.m1.simulated: 400 × 10 float32" in first.output and "written" in first.output
    before = _snapshot(root)
    again = _run("simulate", "sim1", "--n", "400", "--seed", "2", store=root)
    assert again.exit_code == 0 and "already stored, nothing to do" in again.output
    assert _snapshot(root) == before
    store = Store.open(root)
    assert store.feature_names() == ["sim1.m1.simulated", "sim1.m2.simulated"]
    assert store.manifest("sim1").table.shape[0] == 400


def test_simulate_set_overrides_and_info(tmp_path):
    root = tmp_path / "s"
    assert _run("simulate", "sim2", "--n", "300", "--set", "dim_m2=12", store=root).exit_code == 0
    info = _run("info", store=root)
    assert info.exit_code == 0, info.output
    assert "sim2.m2" in info.output and "300 × 12" in info.output and "float32" in info.output
    only = _run("info", "sim2", store=root)
    assert only.exit_code == 0 and "sim2.m1" in only.output


def test_store_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPIPE_STORE", str(tmp_path / "env-store"))
    assert runner.invoke(app, ["simulate", "sim1", "--n", "100"]).exit_code == 0
    assert (tmp_path / "env-store" / "STORE.json").exists()


@pytest.mark.parametrize("args, message", [
    (["simulate", "sim9"], f"unknown dataset 'sim9'; valid: {', '.join(DATASETS.names())}"),
    (["simulate", "sim1", "--set", "bogus=1"], "unknown config key 'bogus'"),
    (["simulate", "sim1", "--set", "n=ten"], "cannot read 'ten' as int"),
    (["simulate", "sim1", "--n", "2"], "--n 2: sim1: the train split has 1 row, fewer than the 2 every split needs"),
    (["simulate", "sim1", "--dtype", "int8"], "--dtype must be"),
    (["info", "sim2"], "the store holds nothing for 'sim2'"),
    (["list", "widgets"], "cannot list 'widgets'; valid: datasets, encoders, methods"),
])
def test_user_errors_exit_2_with_one_line_and_touch_nothing(tmp_path, args, message):
    root = tmp_path / "s"
    assert _run("simulate", "sim1", "--n", "100", store=root).exit_code == 0
    before = _snapshot(root)
    result = _run(*args, store=root)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert _snapshot(root) == before


def test_not_a_store_and_missing_store(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    for args in (["info"], ["simulate", "sim1", "--n", "50"]):
        result = _run(*args, store=tmp_path / "notes")
        assert result.exit_code == 2 and "is not an mmpipe store" in result.output
    assert os.listdir(tmp_path / "notes") == ["a.txt"]
    missing = _run("info", store=tmp_path / "nowhere")
    assert missing.exit_code == 2 and "no mmpipe store" in missing.output
    assert not (tmp_path / "nowhere").exists()


def test_list_shows_every_registry():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for heading in ("datasets", "encoders", "methods"):
        assert heading in result.output
    assert "sim1" in result.output and "sim2" in result.output
    datasets_only = runner.invoke(app, ["list", "datasets"])
    assert "sim1" in datasets_only.output and "methods" not in datasets_only.output


def test_console_script_reports_errors_without_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mmpipe.pipeline", "--store", str(tmp_path / "x"), "info"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("mmpipe: error: no mmpipe store") and "Traceback" not in proc.stderr
